"""`python -m bot` (or `motif bot`): migrate the database, then run the bot.

    python -m bot                        upgrade the database, then connect to Discord
                                         (refused first, touching nothing, without a token)
    python -m bot db upgrade [REV]       migrate up (default: the latest revision)
    python -m bot db downgrade [REV]     migrate down (default: one step; "base": all)
    python -m bot db current             print the database's revision
    python -m bot sync [--guild ID]      publish the slash commands (globally, or to one
                                         server at once while testing)

The db commands need no Discord token. Every variable (the engine's too) is checked first.
Errors an operator can fix are one line on stderr (exit status 2 for configuration, 1 for a
failed database operation), not a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bot.config import Settings
from engine.api.logs import configure_logging

log = logging.getLogger("bot")

EXIT_FAILED = 1
EXIT_CONFIG = 2


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m bot") -> int:
    args = _parser(prog).parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        return _fail(str(exc), EXIT_CONFIG)
    configure_logging(level=settings.log_level, log_format=settings.log_format, process="bot")
    # Alembic announces its plugins at INFO on every run; the migrations it runs stay visible.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if args.command == "db":
        return _db(settings, args.action, args.revision)
    if args.command == "sync":
        return _sync(settings, args.guild)
    return _run(settings)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run the Motif bot.")
    commands = parser.add_subparsers(dest="command")
    db = commands.add_parser("db", help="manage the database schema (no Discord token needed)")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument(
        "revision",
        nargs="?",
        help='upgrade: target (default "head"); downgrade: target (default "-1", or "base")',
    )
    sync = commands.add_parser("sync", help="publish the slash commands to Discord")
    sync.add_argument(
        "--guild",
        type=int,
        metavar="ID",
        help="sync to this server only (instant; global commands can take a while to appear)",
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
    # Before anything touches the disk: a bot that cannot connect must leave no database.
    if settings.discord_token is None:
        return _fail(
            "DISCORD_TOKEN is not set; the bot needs it to connect to Discord", EXIT_CONFIG
        )
    if (status := _db(settings, "upgrade", None)) != 0:
        return status
    # Lazily: discord.py is heavy, and the db commands must work without it.
    from bot import serve
    from bot.app import create_bot

    # Serves until SIGTERM or SIGINT, then drains (bot.lifecycle); logging is set up above.
    return serve.run(create_bot(settings), settings.discord_token)


def _sync(settings: Settings, guild_id: int | None) -> int:
    if settings.discord_token is None:
        return _fail("DISCORD_TOKEN is not set; syncing commands needs it", EXIT_CONFIG)
    try:
        names = asyncio.run(_sync_commands(settings, guild_id))
    except Exception as exc:
        log.debug("sync failed", exc_info=True)
        return _fail(f"syncing the commands failed: {_one_line(exc)}", EXIT_FAILED)
    where = f"server {guild_id}" if guild_id is not None else "all servers (global)"
    print(f"synced {len(names)} commands to {where}: {', '.join(sorted(names))}")
    return 0


async def _sync_commands(settings: Settings, guild_id: int | None) -> list[str]:
    """Publish the slash commands globally, or to one server (instant: handy for testing)."""
    import discord

    from bot.app import create_bot

    assert settings.discord_token is not None
    bot = create_bot(settings, start_engine=False)  # the definitions need no music engine
    async with bot:
        await bot.login(settings.discord_token)  # runs setup_hook, which loads the cogs
        if guild_id is None:
            synced = await bot.tree.sync()
        else:
            guild = discord.Object(id=guild_id)
            bot.tree.copy_global_to(guild=guild)
            synced = await bot.tree.sync(guild=guild)
    return [command.name for command in synced]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _fail(message: str, status: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
