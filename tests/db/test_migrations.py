"""Migrations: up, down and up again on a fresh database; the models match the result;
and the SQLite connection settings are in force."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import Base, create_engine, migrate

from .helpers import ON_SESSION_LOOP

TABLES = {
    "guild",
    "seed",
    "composition",
    "candidate",
    "vote",
    "model_version",
    "finetune_run",
    "jam",
    "jam_round",
}


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


# --- the revision that added pruned versions and finetune_run.channel_id ------------------

PREVIOUS_REVISION = "3cbe342a2758"
PRUNED_REVISION = "f97311720a7d"


def _describe_schema(sync_connection) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    """Every table's columns, keys, indexes (with partial WHERE clauses) and checks, in an
    order-free form: a rebuilt table must describe itself exactly as the original did."""
    inspector = inspect(sync_connection)

    def where(options: dict[str, object]) -> dict[str, str]:
        return {k: " ".join(str(v).split()) for k, v in options.items() if v is not None}

    schema = {}
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        schema[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ),
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": sorted(
                (
                    fk["name"],
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                    fk["options"].get("ondelete"),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (
                    ix["name"],
                    tuple(ix["column_names"]),
                    bool(ix["unique"]),
                    sorted(where(ix.get("dialect_options", {})).items()),
                )
                for ix in inspector.get_indexes(table)
            ),
            "checks": sorted(
                (ck["name"], " ".join(ck["sqltext"].split()))
                for ck in inspector.get_check_constraints(table)
            ),
        }
    return schema


async def _run(url: str, statements: list[str]) -> list[list[tuple[object, ...]]]:
    """Execute `statements` in one transaction; the rows of each."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            results = []
            for statement in statements:
                result = await connection.execute(text(statement))
                results.append([tuple(row) for row in result] if result.returns_rows else [])
            return results
    finally:
        await engine.dispose()


async def _schema(url: str) -> dict[str, dict[str, object]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_describe_schema)
    finally:
        await engine.dispose()


NEW_VERSION = (
    "INSERT INTO model_version (guild_id, path, metrics, status, created_at) "
    "VALUES (1, '/v.pt', '{}', 'ready', CURRENT_TIMESTAMP)"
)


def test_the_pruned_revision_keeps_data_and_restores_the_schema(fresh_database_url: str) -> None:
    url = fresh_database_url
    migrate.upgrade(url, PREVIOUS_REVISION)
    schema_before = asyncio.run(_schema(url))
    asyncio.run(
        _run(
            url,
            [
                "INSERT INTO guild (id, created_at) VALUES (1, CURRENT_TIMESTAMP)",
                NEW_VERSION,  # ids 1, 2, 3
                NEW_VERSION,
                NEW_VERSION,
                "DELETE FROM model_version WHERE id = 3",
                "UPDATE guild SET active_model_version_id = 1",
                "INSERT INTO finetune_run (guild_id, status, progress, metrics, model_version_id,"
                " created_at, updated_at) VALUES (1, 'running', 0.5, '{}', 1,"
                " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            ],
        )
    )

    migrate.upgrade(url, PRUNED_REVISION)
    versions, runs, guild = asyncio.run(
        _run(
            url,
            [
                "UPDATE model_version SET status = 'pruned' WHERE id = 2",
                "UPDATE finetune_run SET channel_id = 1105000000000000100",
                "SELECT id, status FROM model_version ORDER BY id",
                "SELECT status, channel_id FROM finetune_run",
                "SELECT active_model_version_id FROM guild",
            ],
        )
    )[2:]
    assert versions == [(1, "ready"), (2, "pruned")]
    assert runs == [("running", 1105000000000000100)] and guild == [(1,)]

    migrate.downgrade(url, PREVIOUS_REVISION)
    assert asyncio.run(_schema(url)) == schema_before
    versions, guild, runs, _, new_id = asyncio.run(
        _run(
            url,
            [
                "SELECT id, status FROM model_version ORDER BY id",
                "SELECT active_model_version_id FROM guild",
                "SELECT status, progress FROM finetune_run",
                NEW_VERSION,
                "SELECT MAX(id) FROM model_version",
            ],
        )
    )
    # A pruned version must still never serve: the older schema's word for that is rejected.
    assert versions == [(1, "ready"), (2, "rejected")]
    assert guild == [(1,)] and runs == [("running", 0.5)]
    # Ids are never reused, even after SQLite rebuilt the table: 3 was taken once.
    assert new_id == [(4,)]


# --- the revision that added finetune_run.owner and heartbeat_at ---------------------------

LEASE_REVISION = "5a72fe5768c7"
NEW_RUN = (
    "INSERT INTO finetune_run (guild_id, status, progress, metrics, created_at, updated_at)"
    " VALUES (1, '{status}', 0.5, '{{}}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
)


def test_the_lease_revision_keeps_runs_and_restores_the_schema(fresh_database_url: str) -> None:
    url = fresh_database_url
    migrate.upgrade(url, PRUNED_REVISION)
    schema_before = asyncio.run(_schema(url))
    asyncio.run(
        _run(
            url,
            [
                "INSERT INTO guild (id, created_at) VALUES (1, CURRENT_TIMESTAMP)",
                NEW_RUN.format(status="succeeded"),  # ids 1, 2
                NEW_RUN.format(status="failed"),
                "DELETE FROM finetune_run WHERE id = 2",
                NEW_RUN.format(status="running"),  # id 3
            ],
        )
    )

    migrate.upgrade(url, LEASE_REVISION)
    # Runs from before the revision have no owner: start-up recovery may claim them.
    runs = asyncio.run(
        _run(
            url,
            [
                "UPDATE finetune_run SET owner = 'host:1:ab', heartbeat_at = CURRENT_TIMESTAMP"
                " WHERE id = 1",
                "SELECT id, status, owner, heartbeat_at IS NULL FROM finetune_run ORDER BY id",
            ],
        )
    )[1]
    assert runs == [(1, "succeeded", "host:1:ab", False), (3, "running", None, True)]

    migrate.downgrade(url, PRUNED_REVISION)
    assert asyncio.run(_schema(url)) == schema_before
    runs, _, new_id, active = asyncio.run(
        _run(
            url,
            [
                "SELECT id, status, progress FROM finetune_run ORDER BY id",
                NEW_RUN.format(status="cancelled"),
                "SELECT MAX(id) FROM finetune_run",
                # The partial unique index still allows one active run per server.
                "SELECT COUNT(*) FROM finetune_run WHERE status IN ('queued', 'running')",
            ],
        )
    )
    assert runs == [(1, "succeeded", 0.5), (3, "running", 0.5)]
    # Ids are never reused, even after SQLite rebuilt the table: 4 is the next.
    assert new_id == [(4,)] and active == [(1,)]
    with pytest.raises(IntegrityError):
        asyncio.run(_run(url, [NEW_RUN.format(status="queued")]))


# --- the revision that names model versions by the engine's id -----------------------------

JAMS_REVISION = "8d3e1f0a9b27"
ENGINE_ID_REVISION = "b4e7c2d91f30"


def test_the_engine_id_revision_turns_paths_into_ids_and_back(
    fresh_database_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database_url
    migrate.upgrade(url, JAMS_REVISION)
    schema_before = asyncio.run(_schema(url))
    old_path = "/srv/old-data/models/1/20261130-101500-7.pt"
    asyncio.run(
        _run(
            url,
            [
                "INSERT INTO guild (id, created_at) VALUES (1, CURRENT_TIMESTAMP)",
                NEW_VERSION.replace("'/v.pt'", f"'{old_path}'"),
            ],
        )
    )
    migrate.upgrade(url, ENGINE_ID_REVISION)
    [versions] = asyncio.run(_run(url, ["SELECT id, engine_id FROM model_version"]))
    assert versions == [(1, "1/20261130-101500-7")]

    # Down: under the data dir the bot runs with, where the engine keeps its versions.
    monkeypatch.setenv("MOTIF_DATA_DIR", str(tmp_path))
    migrate.downgrade(url, JAMS_REVISION)
    assert asyncio.run(_schema(url)) == schema_before
    [versions] = asyncio.run(_run(url, ["SELECT id, path FROM model_version"]))
    assert versions == [(1, str(tmp_path.resolve() / "models/1/20261130-101500-7.pt"))]
