"""Jams: a channel's session that composes a piece in timed rounds (/jam).

jam holds the session's state (status, options, the lease of the process writing the next
round) and jam_round each round's composition, deadline and winner, so a restarted bot (or a
second process) carries a jam on: deadlines are read from here, and a round is closed by the
conditional UPDATE that moves it from 'open' to 'closed'.

Revision ID: 8d3e1f0a9b27
Revises: 5a72fe5768c7
Create Date: 2026-12-01 12:00:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "8d3e1f0a9b27"
down_revision: str | None = "5a72fe5768c7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ACTIVE_JAM = "status IN ('running', 'paused')"


def upgrade() -> None:
    op.create_table(
        "jam",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "guild_id",
            sa.BigInteger(),
            sa.ForeignKey("guild.id", name="fk_jam_guild_id_guild", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("starter_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("round_seconds", sa.Integer(), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column(
            "seed_id",
            ID,
            sa.ForeignKey("seed.id", name="fk_jam_seed_id_seed", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("seed_midi", sa.LargeBinary(), nullable=True),
        sa.Column("paused_remaining", sa.Float(), nullable=True),
        sa.Column("writer_until", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'paused', 'finished', 'stopped')",
            name="ck_jam_status_known",
        ),
        sa.CheckConstraint("rounds >= 1 AND round_seconds >= 1", name="ck_jam_rounds_positive"),
        sa.PrimaryKeyConstraint("id", name="pk_jam"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jam_guild_id_created_at", "jam", ["guild_id", "created_at"])
    op.create_index(
        "uq_jam_channel_id_active",
        "jam",
        ["channel_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_JAM),
        postgresql_where=sa.text(ACTIVE_JAM),
    )
    op.create_table(
        "jam_round",
        sa.Column("id", ID, primary_key=True),
        sa.Column(
            "jam_id",
            ID,
            sa.ForeignKey("jam.id", name="fk_jam_round_jam_id_jam", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column(
            "composition_id",
            ID,
            sa.ForeignKey(
                "composition.id",
                name="fk_jam_round_composition_id_composition",
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("deadline", TIMESTAMP, nullable=True),
        sa.Column(
            "winner_candidate_id",
            ID,
            sa.ForeignKey(
                "candidate.id",
                name="fk_jam_round_winner_candidate_id_candidate",
                ondelete="SET NULL",
            ),
            nullable=True,
        ),
        sa.Column("winner_votes", sa.Integer(), nullable=True),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("number >= 1", name="ck_jam_round_number_positive"),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_jam_round_status_known"),
        sa.PrimaryKeyConstraint("id", name="pk_jam_round"),
        sa.UniqueConstraint("jam_id", "number", name="uq_jam_round_jam_id_number"),
        sa.UniqueConstraint("composition_id", name="uq_jam_round_composition_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_jam_round_status_deadline", "jam_round", ["status", "deadline"])


def downgrade() -> None:
    op.drop_index("ix_jam_round_status_deadline", table_name="jam_round")
    op.drop_table("jam_round")
    op.drop_index("uq_jam_channel_id_active", table_name="jam")
    op.drop_index("ix_jam_guild_id_created_at", table_name="jam")
    op.drop_table("jam")
