"""`python -m engine finetune --data DIR --out CKPT [--from CKPT]`: a server's model version.

DIR holds the server's MIDI files (seeds, winning candidates); preference pairs, if any, sit
in DIR/pairs/<name>/chosen.mid with rejected*.mid beside it. The checkpoint is written with
the gate's figures and verdict in its meta (and `<CKPT>.json` beside it).

Exit status: 0 when the run completed, whatever the gate said (the verdict is in the output);
2 when the data cannot be used (one line says why); 130 when stopped by SIGTERM/SIGINT.
With --json the last line of stdout is {"accepted", "reason", "checkpoint", "metrics"}.
With --wire-job ID (the engine's own use: engine.serving.finetune_processes) stdout speaks the
engine's wire (engine.api.schema, in frames) as job ID: JobProgress events, then JobDone with
the FinetuneResult or JobFailed with the reason; anything else printed goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from engine.api.errors import BadRequest
from engine.api.schema import (
    FinetuneProgress,
    FinetuneResult,
    FromEngine,
    JobDone,
    JobFailed,
    JobProgress,
    encode,
)
from engine.api.transport import frame


def add_parser(commands) -> None:
    from engine.finetune.defaults import DEFAULTS as d  # light: plain numbers

    p = commands.add_parser("finetune", help="fine-tune a model on a folder of MIDI files")
    p.add_argument("--data", type=Path, required=True, help="folder of the server's MIDI files")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write")
    p.add_argument(
        "--from",
        dest="start",
        type=Path,
        default=None,
        help="checkpoint to start from (default: the shipped base model)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the base corpus is (built there, folk part only, if missing; "
        "default: MOTIF_DATA_DIR, else ./data)",
    )
    p.add_argument("--steps", type=int, default=d["steps"])
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--seq-len", type=int, default=d["seq_len"])
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--eval-every", type=int, default=d["eval_every"])
    p.add_argument(
        "--server-share",
        type=float,
        default=d["server_share"],
        help="share of each batch from the server's pieces (the rest: base replay)",
    )
    p.add_argument(
        "--preference-steps",
        type=int,
        default=d["preference_steps"],
        help="DPO steps on the votes (default: a third of --steps, at least 2)",
    )
    p.add_argument(
        "--min-pairs",
        type=int,
        default=d["min_pairs"],
        help="preference pairs needed for the preference step",
    )
    p.add_argument("--base-eval-tokens", type=int, default=d["base_eval_tokens"])
    p.add_argument("--replay-pieces", type=int, default=d["replay_pieces"])
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: MOTIF_DEVICE)")
    p.add_argument(
        "--nice",
        type=int,
        default=0,
        help="lower this process's CPU priority by this much (the engine uses 10)",
    )
    p.add_argument("--json", action="store_true", help="a JSON result on the last line")
    p.add_argument(
        "--wire-job",
        type=int,
        default=None,
        metavar="ID",
        help="speak the engine's wire on stdout as job ID (the engine's own use)",
    )
    p.set_defaults(run=run)


def _check(args: argparse.Namespace) -> str | None:
    if not args.data.is_dir():
        return f"no folder at {args.data}"
    if args.start is not None and not args.start.is_file():
        return f"no checkpoint at {args.start}"
    for name in (
        "steps",
        "batch_size",
        "seq_len",
        "eval_every",
        "base_eval_tokens",
        "replay_pieces",
    ):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be positive (received {getattr(args, name)})"
    if (args.preference_steps or 0) < 0 or args.min_pairs < 1:
        return "--preference-steps must be >= 0 and --min-pairs >= 1"
    if not 0 < args.server_share <= 1:
        return f"--server-share must be within 0 and 1 (received {args.server_share})"
    if not 0 < args.lr < 1:
        return f"--lr must be within 0 and 1 (received {args.lr})"
    return None


class Wire:
    """Frames of engine.api.schema messages on what was stdout, as job `job_id`. File
    descriptor 1 then points at stderr, so a stray print (ours or a library's) cannot break a
    frame."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        sys.stdout.flush()
        self._out = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)

    def progress(self, phase: str, percent: float) -> None:
        self._send(JobProgress(self.job_id, FinetuneProgress(phase, percent)))

    def done(self, result: FinetuneResult) -> None:
        self._send(JobDone(self.job_id, result))

    def failed(self, exc: BaseException) -> None:
        self._send(JobFailed.of(self.job_id, exc))

    def _send(self, message: FromEngine) -> None:
        self._out.write(frame(encode(message)))


def run(args: argparse.Namespace) -> int:
    wire = Wire(args.wire_job) if args.wire_job is not None else None
    if problem := _check(args):
        print(f"error: {problem}", file=sys.stderr)
        if wire is not None:
            wire.failed(BadRequest(problem))
        return 2
    if args.nice:
        os.nice(args.nice)
    stop = {"requested": False}
    parent = os.getppid()

    def request_stop(signum, frame) -> None:
        stop["requested"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    def should_stop() -> bool:
        # A child of an engine that died is re-parented: stop rather than train for no one.
        return stop["requested"] or os.getppid() != parent

    from engine.finetune.preferences import PreferenceConfig
    from engine.finetune.run import Cancelled, FinetuneConfig, run_finetune
    from engine.finetune.server_data import read_folder
    from engine.model.device import configure_threads, pick_device

    configure_threads(args.settings.threads, decoding=False)
    config = FinetuneConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        lr=args.lr,
        eval_every=args.eval_every,
        server_share=args.server_share,
        replay_pieces=args.replay_pieces,
        base_eval_tokens=args.base_eval_tokens,
        preferences=PreferenceConfig(
            steps=max(2, args.steps // 3)
            if args.preference_steps is None
            else args.preference_steps,
            min_pairs=args.min_pairs,
        ),
    )

    def progress(phase: str, percent: float) -> None:
        if wire is not None:
            wire.progress(phase, percent)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    pieces, pairs = read_folder(args.data)
    try:
        outcome = run_finetune(
            pieces,
            pairs,
            args.out,
            data_dir=args.data_dir or args.settings.data_dir,
            start=args.start,
            config=config,
            device=pick_device(args.device or args.settings.device),
            progress=progress,
            should_stop=should_stop,
            say=say,
        )
    except BadRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        if wire is not None:
            wire.failed(exc)
        return 2
    except Cancelled:
        print("stopped before the end; nothing was written", file=sys.stderr)
        return 130
    from engine.model.checkpoint import write_record

    result = {
        "accepted": outcome.accepted,
        "reason": outcome.reason,
        "checkpoint": str(outcome.checkpoint),
        "metrics": outcome.metrics,
    }
    write_record(outcome.checkpoint, result)
    say(f"{'accepted' if outcome.accepted else 'rejected'}: {outcome.reason}")
    if wire is not None:  # the engine names the version (engine.serving.model_store)
        wire.done(
            FinetuneResult(
                outcome.accepted,
                outcome.reason,
                model=str(outcome.checkpoint),
                metrics=outcome.metrics,
            )
        )
    elif args.json:
        print(json.dumps(result), flush=True)
    return 0
