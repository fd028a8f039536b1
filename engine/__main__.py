"""`python -m engine data build | train | finetune | compose | eval | serve | worker`.

Every MOTIF_* variable is read and checked once, here, before any command runs: a bad one
stops the process with one line naming it (exit status 2).
"""

from __future__ import annotations

import argparse
import sys

from engine.api.config import EngineSettings
from engine.cli import compose, data, evaluate, finetune, serve, train, worker

EXIT_CONFIG = 2


def main(argv: list[str] | None = None, *, prog: str = "python -m engine") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (data, train, finetune, compose, evaluate, serve, worker):
        module.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        args.settings = EngineSettings.from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
