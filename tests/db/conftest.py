"""Fixtures for the storage tests: real SQLite files, and a real PostgreSQL server when
MOTIF_TEST_POSTGRES_URL points at one (`eval "$(bash .ci/postgres.sh)"` starts one).

Tests that take `database_url` (or `engine`, `sessions`, `session`) run once per backend.
Every test gets an empty, migrated database: SQLite copies a file migrated once per session,
PostgreSQL truncates a database migrated once per session.

The async tests here run on the session's event loop (see `pytestmark` in each module),
like the async fixtures, whose default loop scope pyproject.toml sets to "session".
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.db import Base, create_engine, create_sessionmaker, migrate

POSTGRES_ENV = "MOTIF_TEST_POSTGRES_URL"
POSTGRES_SKIP_REASON = (
    f"{POSTGRES_ENV} is not set: the PostgreSQL storage tests did NOT run. "
    'Start a server with: eval "$(bash .ci/postgres.sh)"'
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


# --- PostgreSQL databases ------------------------------------------------------------------


def postgres_server_url() -> str:
    url = os.environ.get(POSTGRES_ENV, "").strip()
    if not url:
        pytest.skip(POSTGRES_SKIP_REASON)
    return url


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction.
    engine = create_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def create_postgres_database(server_url: str, prefix: str) -> str:
    """A new, empty database on the test server (never the one the URL names)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"'))
    return _with_database(server_url, name)


def drop_postgres_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- migrated databases, one per backend per session ---------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "motif.db"
    migrate.upgrade(sqlite_url(path))
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> Iterator[str]:
    server = postgres_server_url()
    url = create_postgres_database(server, "motif_suite")
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_postgres_database(server, url)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database (emptied by the `engine` fixture on PG)."""
    if backend == "sqlite":
        path = tmp_path / "motif.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return sqlite_url(path)
    return request.getfixturevalue("postgres_migrated")


@pytest.fixture
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a database that was never migrated (for the migration tests)."""
    if backend == "sqlite":
        yield sqlite_url(tmp_path / "fresh" / "motif.db")
        return
    server = postgres_server_url()
    url = create_postgres_database(server, "motif_fresh")
    try:
        yield url
    finally:
        drop_postgres_database(server, url)


# --- engines and sessions ------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def engine(database_url: str, backend: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    if backend == "postgres":
        tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest_asyncio.fixture(loop_scope="session")
async def session(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


# --- a loud line at the end when PostgreSQL did not run --------------------------------------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if any(POSTGRES_ENV in str(getattr(report, "longrepr", "")) for report in skipped):
        terminalreporter.write_sep("!", "PostgreSQL storage tests were SKIPPED", red=True)
        terminalreporter.write_line(POSTGRES_SKIP_REASON, red=True)
