"""Engine and session factories, with the SQLite settings that make it safe to share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine

from bot.config import DEFAULT_SQLITE_BUSY_TIMEOUT_MS, normalize_database_url

# Execution option a transaction sets before its first statement when it will write.
# On SQLite it turns BEGIN into BEGIN IMMEDIATE (see _install_sqlite_transactions).
WRITE_INTENT = "motif_write_intent"


def create_engine(
    url: str,
    *,
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
    sqlite_foreign_keys: bool = True,
    echo: bool = False,
) -> AsyncEngine:
    """Create the async engine for `url` (SQLite via aiosqlite or PostgreSQL via asyncpg).

    For SQLite this creates the database's directory, and every connection gets WAL, a busy
    timeout and foreign key enforcement. Migrations pass `sqlite_foreign_keys=False`: SQLite
    rebuilds a table to alter it, and dropping the old copy would cascade into its children.
    """
    parsed = make_url(normalize_database_url(url))
    if parsed.get_backend_name() != "sqlite":
        # pre_ping: a PostgreSQL restart or idle timeout must not surface as a failed vote.
        return _create_async_engine(parsed, echo=echo, pool_pre_ping=True)

    database = parsed.database or ""
    if database in ("", ":memory:") or "mode=memory" in database:
        # One shared connection cannot give concurrent sessions their own transactions.
        raise ValueError(
            f"SQLite must be a file for the bot to share it (received {database or '(empty)'!r})"
        )
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = _create_async_engine(parsed, echo=echo)
    _install_sqlite_pragmas(engine, sqlite_busy_timeout_ms, sqlite_foreign_keys)
    _install_sqlite_transactions(engine)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: query functions commit, and their results stay readable.
    return async_sessionmaker(engine, expire_on_commit=False)


def _install_sqlite_pragmas(engine: AsyncEngine, busy_timeout_ms: int, foreign_keys: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the sqlite3 module, decides where transactions begin: the module's
        # own implicit BEGIN skips SELECTs, so reads would not see one consistent snapshot.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers never block the writer and the writer never blocks readers.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()


def _install_sqlite_transactions(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A read-then-write transaction that began DEFERRED fails with "database is locked"
        # (without waiting) when another writer committed since its read. Taking the write
        # lock up front makes writers queue on busy_timeout instead, and serializes them.
        if connection.get_execution_options().get(WRITE_INTENT):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")
