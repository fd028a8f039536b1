"""The database schema as SQLAlchemy models. Alembic migrations are the source of truth;
tests check that these models and the migrated schema agree.

Every row of server data carries or reaches a `guild_id`, and deleting a guild removes all of
it (ON DELETE CASCADE), which is how the bot forgets a server that removes it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.db.types import IdType, JsonType, SnowflakeType, UTCDateTime, utcnow
from engine.api.limits import SEED_NAME_CHARS

# Stable constraint names, so that migrations can refer to (and drop) them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SEED_NAME_MAX_LENGTH = SEED_NAME_CHARS.high
RUN_OWNER_MAX_LENGTH = 64
SHA256_HEX_LENGTH = 64


class FinetuneStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


# At most one run per guild may be in one of these states (a partial unique index).
ACTIVE_FINETUNE_STATUSES = (FinetuneStatus.QUEUED, FinetuneStatus.RUNNING)


class ModelVersionStatus(StrEnum):
    READY = "ready"  # passed the held-out quality gate; may be activated
    REJECTED = "rejected"  # kept for its figures, never served
    PRUNED = "pruned"  # was ready, but the engine deleted its checkpoint: figures only


def _sql_in(values: tuple[str, ...] | type[StrEnum]) -> str:
    return ", ".join(f"'{value}'" for value in values)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Guild(Base):
    """A Discord server. Created on its first write; its id is the Discord snowflake."""

    __tablename__ = "guild"

    id: Mapped[int] = mapped_column(SnowflakeType, primary_key=True, autoincrement=False)
    # NULL means the shared base model. use_alter: guild and model_version refer to each other.
    active_model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_version.id", ondelete="SET NULL", use_alter=True)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Seed(Base):
    """A short MIDI motif saved by a server, used to start compositions."""

    __tablename__ = "seed"
    __table_args__ = (
        UniqueConstraint("guild_id", "name"),
        UniqueConstraint("guild_id", "sha256"),
        {"sqlite_autoincrement": True},
    )

    # sqlite_autoincrement: ids are never reused, so a stale button cannot reach a newer seed.
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guild.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(SEED_NAME_MAX_LENGTH))
    uploader_id: Mapped[int] = mapped_column(SnowflakeType)
    midi: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(SHA256_HEX_LENGTH))
    # Optional figures the engine reports when it validates the seed, shown in listings.
    notes: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Composition(Base):
    """One round of composing: the request, its parameters and its candidates.

    The seed is whichever of these is set: `parent_candidate_id` (a continuation, which makes
    the composition part of a piece), `seed_id` (a saved seed) or `seed_midi` alone (an
    uploaded attachment). `seed_midi` keeps the exact bytes used for non-continuations, so a
    reroll still works after the saved seed is removed.
    """

    __tablename__ = "composition"
    __table_args__ = (
        Index(None, "guild_id", "created_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guild.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(SnowflakeType)
    # Set once the bot has posted the message that carries the candidates.
    message_id: Mapped[int | None] = mapped_column(SnowflakeType)
    requester_id: Mapped[int] = mapped_column(SnowflakeType)
    parent_candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidate.id", ondelete="SET NULL", use_alter=True), index=True
    )
    seed_id: Mapped[int | None] = mapped_column(
        ForeignKey("seed.id", ondelete="SET NULL"), index=True
    )
    seed_midi: Mapped[bytes | None] = mapped_column(LargeBinary)
    params: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    # NULL means the base model produced it.
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_version.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    # lazy="raise": async code must say what it loads; a silent lazy load would fail anyway.
    candidates: Mapped[list[Candidate]] = relationship(
        foreign_keys="Candidate.composition_id",
        order_by="Candidate.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="raise",
    )


class Candidate(Base):
    """One continuation the engine wrote for a composition. Audio is re-rendered, not stored."""

    __tablename__ = "candidate"
    __table_args__ = (
        UniqueConstraint("composition_id", "position"),
        # Target of vote's composite foreign key: a vote's candidate is of the vote's composition.
        UniqueConstraint("composition_id", "id"),
        CheckConstraint("position >= 1", name="position_positive"),
        CheckConstraint("notes >= 0 AND seconds >= 0", name="figures_non_negative"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    composition_id: Mapped[int] = mapped_column(ForeignKey("composition.id", ondelete="CASCADE"))
    # 1-based, as shown to members ("candidate 1") and in the engine's file names.
    position: Mapped[int] = mapped_column(Integer)
    midi: Mapped[bytes] = mapped_column(LargeBinary)
    seconds: Mapped[float] = mapped_column(Float)
    notes: Mapped[int] = mapped_column(Integer)


class Vote(Base):
    """A member's single vote in a composition; the primary key makes it one per member."""

    __tablename__ = "vote"
    __table_args__ = (
        ForeignKeyConstraint(
            ["composition_id", "candidate_id"],
            ["candidate.composition_id", "candidate.id"],
            ondelete="CASCADE",
        ),
        Index(None, "composition_id", "candidate_id"),
    )

    # The composite foreign key above also ties the vote to its composition (via the candidate).
    composition_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(SnowflakeType, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(IdType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelVersion(Base):
    """A server's fine-tuned checkpoint. `parent_id` is the version it was tuned from
    (NULL: the base model), which is what a rollback returns to."""

    __tablename__ = "model_version"
    __table_args__ = (
        Index(None, "guild_id", "created_at"),
        CheckConstraint(f"status IN ({_sql_in(ModelVersionStatus)})", name="status_known"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guild.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_version.id", ondelete="SET NULL"), index=True
    )
    # The engine's id of the version ("<guild id>/<name>"), never a path: the engine owns the
    # checkpoint file and resolves the id to it (engine.serving.model_store).
    engine_id: Mapped[str] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=ModelVersionStatus.READY.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class FinetuneRun(Base):
    """A fine-tuning job of one server, from request to the model version it produced."""

    __tablename__ = "finetune_run"
    __table_args__ = (
        Index(None, "guild_id", "created_at"),
        # The database, not a check-then-insert, guarantees one active run per guild.
        Index(
            "uq_finetune_run_guild_id_active",
            "guild_id",
            unique=True,
            sqlite_where=text(f"status IN ({_sql_in(ACTIVE_FINETUNE_STATUSES)})"),
            postgresql_where=text(f"status IN ({_sql_in(ACTIVE_FINETUNE_STATUSES)})"),
        ),
        CheckConstraint(f"status IN ({_sql_in(FinetuneStatus)})", name="status_known"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_fraction"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guild.id", ondelete="CASCADE"))
    requester_id: Mapped[int | None] = mapped_column(SnowflakeType)
    # Where the result is announced (None: nowhere, e.g. runs from before the column).
    channel_id: Mapped[int | None] = mapped_column(SnowflakeType)
    status: Mapped[str] = mapped_column(String(16), default=FinetuneStatus.QUEUED.value)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_version.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The bot process that runs it, and when that process last renewed its lease on it: a
    # process starting beside a live one fails only the runs whose owner is gone. NULL:
    # owned by no live process (a run from before these columns, or created by hand).
    owner: Mapped[str | None] = mapped_column(String(RUN_OWNER_MAX_LENGTH))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JamStatus(StrEnum):
    RUNNING = "running"  # a round is open, or the next one is being written
    PAUSED = "paused"  # the open round's clock is stopped (votes still count)
    FINISHED = "finished"  # every round was played
    STOPPED = "stopped"  # ended early by its starter or a manager


# At most one jam per channel may be in one of these states (a partial unique index).
ACTIVE_JAM_STATUSES = (JamStatus.RUNNING, JamStatus.PAUSED)


class Jam(Base):
    """A session in one channel that composes a piece in timed rounds (/jam start).

    Its state and deadlines live here, not in a bot process, so that after a restart (or
    beside another process) the jam goes on at the right time. `writer_until` is the lease
    of the process writing the next round: NULL or past means nobody is.
    """

    __tablename__ = "jam"
    __table_args__ = (
        Index(
            "uq_jam_channel_id_active",
            "channel_id",
            unique=True,
            sqlite_where=text(f"status IN ({_sql_in(ACTIVE_JAM_STATUSES)})"),
            postgresql_where=text(f"status IN ({_sql_in(ACTIVE_JAM_STATUSES)})"),
        ),
        Index(None, "guild_id", "created_at"),
        CheckConstraint(f"status IN ({_sql_in(JamStatus)})", name="status_known"),
        CheckConstraint("rounds >= 1 AND round_seconds >= 1", name="rounds_positive"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    guild_id: Mapped[int] = mapped_column(ForeignKey("guild.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(SnowflakeType)
    starter_id: Mapped[int] = mapped_column(SnowflakeType)
    status: Mapped[str] = mapped_column(String(16), default=JamStatus.RUNNING.value)
    rounds: Mapped[int] = mapped_column(Integer)
    round_seconds: Mapped[int] = mapped_column(Integer)
    # The ComposeJob options every round uses (bars, candidates, temperature, instrument...).
    params: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    seed_id: Mapped[int | None] = mapped_column(ForeignKey("seed.id", ondelete="SET NULL"))
    seed_midi: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Seconds left of the open round's vote while paused.
    paused_remaining: Mapped[float | None] = mapped_column(Float)
    writer_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JamRoundStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class JamRound(Base):
    """One round of a jam: a composition (stored like /compose's, so its votes count in /top
    and fine-tuning) and, once closed, the candidate that won. The round is closed by a
    conditional UPDATE (status 'open' -> 'closed'): exactly once, whichever process is first."""

    __tablename__ = "jam_round"
    __table_args__ = (
        UniqueConstraint("jam_id", "number"),
        Index(None, "status", "deadline"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint(f"status IN ({_sql_in(JamRoundStatus)})", name="status_known"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    jam_id: Mapped[int] = mapped_column(ForeignKey("jam.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1-based, as members count rounds
    composition_id: Mapped[int] = mapped_column(
        ForeignKey("composition.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(16), default=JamRoundStatus.OPEN.value)
    # When the vote closes; NULL while the jam is paused.
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    winner_candidate_id: Mapped[int | None] = mapped_column(
        ForeignKey("candidate.id", ondelete="SET NULL")
    )
    winner_votes: Mapped[int | None] = mapped_column(Integer)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
