"""Migrations: up, down and up again on a fresh database; the models match the result;
and the SQLite connection settings are in force."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import Base, create_engine, migrate

from .helpers import ON_SESSION_LOOP

TABLES = {"guild", "seed", "composition", "candidate", "vote", "model_version", "finetune_run"}


async def _table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def test_up_down_up(fresh_database_url: str) -> None:
    url = fresh_database_url
    assert migrate.current(url) is None

    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    assert asyncio.run(_table_names(url)) >= TABLES

    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    assert asyncio.run(_table_names(url)) & TABLES == set()

    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    assert asyncio.run(_table_names(url)) >= TABLES


def test_every_revision_steps_down_and_up_one_at_a_time(fresh_database_url: str) -> None:
    url = fresh_database_url
    migrate.upgrade(url)
    while migrate.current(url) is not None:
        migrate.downgrade(url, "-1")
    migrate.upgrade(url, "+1")
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()


@ON_SESSION_LOOP
async def test_models_match_the_migrated_schema(engine: AsyncEngine) -> None:
    def diff(sync_connection):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with engine.connect() as connection:
        assert await connection.run_sync(diff) == []


@ON_SESSION_LOOP
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection:
        assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() == 10_000


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a file"):
        create_engine("sqlite+aiosqlite:///:memory:")
