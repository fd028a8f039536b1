"""Column types shared by the models, chosen to behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

# Surrogate keys: BIGINT on PostgreSQL so they never run out; on SQLite only "INTEGER
# PRIMARY KEY" aliases the rowid and autoincrements (BIGINT would not), and it is 64-bit anyway.
IdType = BigInteger().with_variant(Integer(), "sqlite")

# Discord snowflakes (guild, channel, message and user ids) are unsigned 64-bit integers that
# stay below 2**63 for centuries, so a signed BIGINT holds them.
SnowflakeType = BigInteger

# JSONB on PostgreSQL (indexable, compact); JSON text on SQLite.
JsonType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored in UTC.

    PostgreSQL keeps the offset (timestamptz); SQLite keeps none, so values are converted to
    UTC on the way in and marked as UTC on the way out. Naive datetimes are refused rather
    than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware (received {value!r})")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
