"""How query functions use their session: every call is one short transaction.

A query function begins a transaction on the session it is given, commits before returning
and detaches what it returns. So callers never hold a transaction (nor, on SQLite, a lock or
an old snapshot) across an await on Discord, and returned rows are plain snapshots: reading
them never touches the database, and the next call loads fresh ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Guild
from bot.db.session import WRITE_INTENT
from bot.db.types import utcnow

# Discord snowflakes are positive and fit in a signed BIGINT.
_SNOWFLAKE_MAX = 2**63 - 1


def _check_idle(session: AsyncSession) -> None:
    if session.in_transaction():
        raise RuntimeError(
            "bot.db query functions run their own transaction, but this session is in one: "
            "commit or roll back the session's own work first"
        )


@asynccontextmanager
async def reading(session: AsyncSession) -> AsyncIterator[None]:
    """A read-only transaction, committed (cheaply) at the end."""
    _check_idle(session)
    try:
        async with session.begin():
            yield
    finally:
        session.expunge_all()


@asynccontextmanager
async def writing(session: AsyncSession) -> AsyncIterator[None]:
    """A transaction that will write: committed at the end, rolled back on any error.

    On SQLite it takes the database's write lock at BEGIN, so its reads cannot go stale
    before its writes; on PostgreSQL the functions lock the rows their decision rests on.
    """
    _check_idle(session)
    try:
        async with session.begin():
            await session.connection(execution_options={WRITE_INTENT: True})
            yield
    finally:
        session.expunge_all()


def dialect_name(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def ensure_guild(session: AsyncSession, guild_id: int) -> None:
    """Create the guild's row if this is the server's first write (race-free upsert)."""
    insert = pg_insert if dialect_name(session) == "postgresql" else sqlite_insert
    await session.execute(
        insert(Guild)
        .values(id=guild_id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[Guild.id])
    )


async def lock_guild(session: AsyncSession, guild_id: int) -> Guild:
    """Ensure and lock the guild's row, serializing this server's changes to its settings
    (PostgreSQL row lock; SQLite is already serialized by BEGIN IMMEDIATE)."""
    await ensure_guild(session, guild_id)
    return (
        await session.execute(select(Guild).where(Guild.id == guild_id).with_for_update())
    ).scalar_one()


def check_snowflake(name: str, value: int) -> int:
    """Reject ids that cannot be Discord snowflakes: a bug in the caller, not user input."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _SNOWFLAKE_MAX:
        raise ValueError(f"{name} must be a positive 64-bit Discord id (received {value!r})")
    return value


def check_id(name: str, value: int) -> int:
    """Reject database ids that cannot exist (bools, zero, negatives, non-integers)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer id (received {value!r})")
    return value
