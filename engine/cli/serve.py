"""`python -m engine serve --fd N`: the engine process the bot's EngineClient starts.

It reads engine.api.schema's messages in frames on the socket it inherited as file descriptor N
(see engine.api.transport), loads the model once, keeps the synth loaded, and stops when that
socket closes. Settings come from the environment (engine.api.config: MOTIF_CHECKPOINT,
MOTIF_DEVICE, MOTIF_MAX_ROWS, MOTIF_RENDER_THREADS, MOTIF_MODEL_CACHE_MB, MOTIF_LOG_LEVEL,
MOTIF_LOG_FORMAT, the work limits, ...), so the bot's operators set them in one place; the
options below override them. SIGTERM drains it (engine.serving.server): the jobs in flight
are delivered, then it exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import logging
import sys
from pathlib import Path

from engine.api.config import EngineSettings


def add_parser(commands) -> None:
    p = commands.add_parser("serve", help="serve compose jobs to an EngineClient")
    p.add_argument(
        "--fd",
        type=int,
        required=True,
        help="file descriptor of the socket to serve (inherited from the client)",
    )
    add_engine_options(p)
    p.set_defaults(run=run)


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """The options that override the engine's settings (serve, and worker for its engine)."""
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="base model (default: MOTIF_CHECKPOINT, else the shipped base.pt)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: MOTIF_DEVICE)")
    p.add_argument(
        "--max-rows",
        type=int,
        default=None,
        help="sequences decoding at once (default: MOTIF_MAX_ROWS, else 64 on CPU)",
    )
    p.add_argument(
        "--render-threads",
        type=int,
        default=None,
        help="FluidSynth threads (default: MOTIF_RENDER_THREADS, else cores / 4)",
    )


def with_engine_options(args: argparse.Namespace) -> EngineSettings:
    """The settings of the environment with the options given; ValueError for a bad one."""
    overrides = {
        name: value
        for name, value in (
            ("checkpoint", args.checkpoint),
            ("device", args.device),
            ("max_rows", args.max_rows),
            ("render_threads", args.render_threads),
        )
        if value is not None
    }
    return dataclasses.replace(args.settings, **overrides)


def run(args: argparse.Namespace) -> int:
    # A crash in native code (torch, FluidSynth, symusic) leaves every thread's stack in the
    # log before the client restarts the engine.
    faulthandler.enable()
    try:
        settings = with_engine_options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from engine.api.logs import configure_logging

    configure_logging(level=settings.log_level, log_format=settings.log_format, process="engine")
    from engine.api.transport import SocketChannel
    from engine.audio.render import RendererUnavailable
    from engine.model.checkpoint import BASE_CHECKPOINT
    from engine.model.device import configure_threads
    from engine.serving.server import Server
    from soundfonts import SoundfontNotFound

    configure_threads(settings.threads)
    channel = SocketChannel.from_fd(args.fd)
    try:
        server = Server(channel, settings, checkpoint=settings.checkpoint or BASE_CHECKPOINT)
    except (FileNotFoundError, SoundfontNotFound, RendererUnavailable) as exc:
        # A setup problem, not a bug: one line for the operator, no traceback.
        logging.getLogger("engine.serve").error("cannot start: %s", exc)
        return 2
    return server.run()
