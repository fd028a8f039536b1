"""Run the Alembic migrations from code: the bot at start-up, `python -m bot db`, the tests.

These functions are synchronous and run their own event loop (Alembic's async env.py uses
asyncio.run), so async code calls them in a thread: `await upgrade_async(url)`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.config import normalize_database_url
from bot.db.session import create_engine

# Inside the package (bot/db/migrations), so an installed wheel can migrate; alembic.ini at
# the repository root points the alembic CLI here too.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config for `url` without alembic.ini, so it leaves logging alone."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise RuntimeError(f"the migrations are missing (looked in {MIGRATIONS_DIR})")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Read by bot/db/migrations/env.py; passed as an attribute so no password lands in a file.
    config.attributes["database_url"] = normalize_database_url(url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision` (default: the latest)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "-1") -> None:
    """Migrate down to `revision`: "-1" (default) undoes one step, "base" undoes all."""
    command.downgrade(alembic_config(url), revision)


def head() -> str:
    """The latest revision the code knows."""
    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite:///unused.db"))
    revision = script.get_current_head()
    if revision is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return revision


def current(url: str) -> str | None:
    """The database's revision; None if it was never migrated."""
    return asyncio.run(_current(url))


async def _current(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


async def upgrade_async(url: str, revision: str = "head") -> None:
    """upgrade() from async code, in a thread, so the event loop keeps running."""
    await asyncio.to_thread(upgrade, url, revision)
