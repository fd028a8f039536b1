"""`python -m engine data build | train | finetune | compose | eval | serve`."""

from __future__ import annotations

import argparse
import sys

from engine.cli import compose, data, evaluate, finetune, serve, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (data, train, finetune, compose, evaluate, serve):
        module.add_parser(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
