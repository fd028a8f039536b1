"""`motif`: one command for the bot, the engine and the database (the installed console script).

    motif bot [sync [--guild ID]]                 = python -m bot [sync ...]
    motif db upgrade|downgrade|current [REV]      = python -m bot db ...
    motif engine compose|serve|worker|finetune|eval|train|data ...   = python -m engine ...

It only forwards to those mains, which stay the reference (`python -m bot`, `python -m
engine` keep working from a checkout).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

USAGE = """usage: motif bot [sync [--guild ID]]
       motif db upgrade|downgrade|current [REVISION]
       motif engine compose|serve|worker|finetune|eval|train|data ...

Run `motif bot --help`, `motif db --help` or `motif engine --help` for each one's options."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command, rest = (args[0], args[1:]) if args else (None, [])
    if command == "bot":
        from bot.__main__ import main as bot_main

        return bot_main(rest, prog="motif bot")
    if command == "db":
        from bot.__main__ import main as bot_main

        return bot_main(["db", *rest], prog="motif")
    if command == "engine":
        from engine.__main__ import main as engine_main

        status: int = engine_main(rest, prog="motif engine")
        return status
    if command in ("-h", "--help"):
        print(USAGE)
        return 0
    print(USAGE, file=sys.stderr)
    if command is not None:
        print(f"error: unknown command {command!r} (choose bot, db or engine)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
