"""Alembic environment: async engines, the bot's own settings, one transaction per run."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.config import Settings
from bot.db.models import Base
from bot.db.session import WRITE_INTENT, create_engine

config = context.config
# Only the alembic CLI reads alembic.ini's logging; bot.db.migrate leaves the bot's alone.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata
# PostgreSQL's advisory lock key for migrations (any constant the bot uses for nothing else).
MIGRATION_LOCK = 0x4D6F746966  # "Motif"


def database_url() -> str:
    # bot.db.migrate passes the URL; the alembic CLI uses the bot's environment
    # (DATABASE_URL, or SQLite in MOTIF_DATA_DIR), so both always agree.
    return config.attributes.get("database_url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL instead of running it."""
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite alters tables by rebuilding them; autogenerate must write batch operations.
        render_as_batch=sqlite,
        # Alembic assumes SQLite cannot roll back DDL, but it can once SQLAlchemy emits the
        # BEGIN (bot.db.session does): then a failed upgrade leaves the database untouched.
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Bot processes (shards) starting together each upgrade first: one at a time,
            # so the others find the schema done. Held until this transaction ends.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
        if sqlite:
            # Foreign keys are off while migrating (rebuilding a table must not cascade), so
            # check them before committing: a migration that breaks them rolls back whole.
            broken = connection.execute(text("PRAGMA foreign_key_check")).fetchall()
            if broken:
                raise RuntimeError(f"migration left rows violating foreign keys: {broken[:5]}")


async def run_migrations_online() -> None:
    engine = create_engine(database_url(), sqlite_foreign_keys=False)
    try:
        async with engine.connect() as connection:
            # Take SQLite's write lock at BEGIN, so a running bot cannot slip in between.
            await connection.execution_options(**{WRITE_INTENT: True})
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
