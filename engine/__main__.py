"""`python -m engine data build | train | compose | eval`."""

from __future__ import annotations

import argparse
import sys

from engine.cli import compose, data, evaluate, train


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (data, train, compose, evaluate):
        module.add_parser(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
