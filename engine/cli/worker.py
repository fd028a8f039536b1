"""`python -m engine worker`: an engine worker of the Redis job queue (engine.queue.worker).

Start any number, on any machines that reach Redis (CPU or GPU): each owns one engine process
(`python -m engine serve`) with the settings of this environment (MOTIF_CHECKPOINT,
MOTIF_DEVICE, MOTIF_MAX_ROWS, ...; the options below override them) and takes jobs while its
engine has room. SIGTERM drains it: the jobs in flight are posted, then it exits 0.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys

from engine.cli.serve import add_engine_options, with_engine_options

QUEUE_URL = "MOTIF_QUEUE_URL"


def add_parser(commands) -> None:
    from engine.api.queue_keys import DEFAULT_CLAIM_IDLE_SECONDS, DEFAULT_PREFIX

    p = commands.add_parser("worker", help="take compose, render and fine-tune jobs from Redis")
    p.add_argument(
        "--queue-url", default=None, help=f"the Redis to take jobs from (default: {QUEUE_URL})"
    )
    p.add_argument(
        "--name", default=None, help="this worker's name in Redis, unique (default: <host>-<pid>)"
    )
    p.add_argument(
        "--claim-idle",
        type=float,
        default=DEFAULT_CLAIM_IDLE_SECONDS,
        help="seconds after which a silent worker's jobs are taken over "
        f"(default: {DEFAULT_CLAIM_IDLE_SECONDS:g})",
    )
    # The prefix of the Redis keys: the tests give each test its own. Deployments sharing
    # one Redis use a database each (the URL's /N), which needs no setting on the bot.
    p.add_argument("--prefix", default=DEFAULT_PREFIX, help=argparse.SUPPRESS)
    add_engine_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    faulthandler.enable()
    from engine.api.child_env import child_environment
    from engine.api.logs import configure_logging
    from engine.api.queue_keys import check_queue_url

    url = args.queue_url or os.environ.get(QUEUE_URL, "").strip()
    try:
        if not url:
            raise ValueError(
                f"{QUEUE_URL} (or --queue-url) must name the Redis to take jobs "
                "from, e.g. redis://127.0.0.1:6379/0"
            )
        check_queue_url(url)
        if args.claim_idle < 1:
            raise ValueError(f"--claim-idle must be at least 1 s (received {args.claim_idle})")
        settings = with_engine_options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, log_format=settings.log_format, process="worker")
    import asyncio

    from engine.queue.worker import QueueWorker

    # The engine gets this worker's checked settings and nothing secret: not the queue's URL
    # (it may hold Redis' password), which only this process needs.
    env = child_environment(settings.to_env())
    env.pop(QUEUE_URL, None)
    argv = [sys.executable, "-m", "engine", "serve"]
    from engine.serving.model_store import ModelStore

    # The servers' versions this worker fetched or made, under its engine's data dir: a cache
    # of those the workers share in Redis (engine.queue.shared_models).
    models = ModelStore(settings.data_dir, keep_recent=settings.finetune_keep_versions)
    worker = QueueWorker(
        url,
        argv,
        env,
        models=models,
        name=args.name,
        prefix=args.prefix,
        claim_idle=args.claim_idle,
    )
    return asyncio.run(worker.run())
