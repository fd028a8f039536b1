"""`python -m bot`: migrate the database, then run the bot.

    python -m bot                        upgrade the database, then connect to Discord
    python -m bot db upgrade [REV]       migrate up (default: the latest revision)
    python -m bot db downgrade [REV]     migrate down (default: one step; "base": all)
    python -m bot db current             print the database's revision

The db commands need no Discord token. Errors an operator can fix are one line on stderr
(exit status 2 for configuration, 1 for a failed database operation), not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from bot.config import Settings

log = logging.getLogger("bot")

EXIT_FAILED = 1
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    # Alembic announces its plugins at INFO on every run; the migrations it runs stay visible.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if args.command == "db":
        return _db(settings, args.action, args.revision)
    return _run(settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Run the Motif bot.")
    commands = parser.add_subparsers(dest="command")
    db = commands.add_parser("db", help="manage the database schema (no Discord token needed)")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument(
        "revision",
        nargs="?",
        help='upgrade: target (default "head"); downgrade: target (default "-1", or "base")',
    )
    return parser


def _db(settings: Settings, action: str, revision: str | None) -> int:
    # Imported here: Alembic is only needed by these commands and by start-up.
    from bot.db import migrate

    url, shown = settings.database_url, settings.redacted_database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        if action == "upgrade":
            migrate.upgrade(url, revision or "head")
        elif action == "downgrade":
            migrate.downgrade(url, revision or "-1")
        elif revision is not None:
            return _fail("db current takes no revision", EXIT_CONFIG)
        print(f"{shown}: at revision {migrate.current(url) or 'none (empty database)'}")
    except Exception as exc:
        # One line for the operator; the traceback with MOTIF_LOG_LEVEL=DEBUG.
        log.debug("database %s failed", action, exc_info=True)
        return _fail(f"database {action} failed for {shown}: {_one_line(exc)}", EXIT_FAILED)
    return 0


def _run(settings: Settings) -> int:
    if (status := _db(settings, "upgrade", None)) != 0:
        return status
    if settings.discord_token is None:
        return _fail(
            "DISCORD_TOKEN is not set; the bot needs it to connect to Discord", EXIT_CONFIG
        )
    try:
        # Lazily: discord.py is heavy, and the db commands must work without it.
        app = importlib.import_module("bot.app")
    except ModuleNotFoundError as exc:
        if exc.name != "bot.app":
            raise
        return _fail("the Discord bot is not built yet (bot/app.py is missing)", EXIT_CONFIG)
    bot = app.create_bot(settings)
    # discord.py's run() owns the event loop; logging is already configured above.
    bot.run(settings.discord_token, log_handler=None)
    return 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _fail(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
