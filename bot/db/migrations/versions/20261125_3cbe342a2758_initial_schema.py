"""Initial schema.

Guilds, seeds, compositions, candidates, votes, model versions and fine-tune runs.

Revision ID: 3cbe342a2758
Revises:
Create Date: 2026-11-25 09:30:13.943817+00:00

Types are spelled out here rather than imported from bot.db, so that this migration keeps
meaning what it meant when the models change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3cbe342a2758"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# BIGINT keys on PostgreSQL; on SQLite only INTEGER PRIMARY KEY autoincrements (64-bit too).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SNOWFLAKE = sa.BigInteger()
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
ACTIVE_RUN = "status IN ('queued', 'running')"
# Names are final as written; op.f() says so where the naming convention (which env.py
# passes through target_metadata) would otherwise prefix check constraint names again.

# guild <-> model_version and composition <-> candidate refer to each other. SQLite cannot
# add a foreign key to an existing table but accepts a reference to a table not created yet;
# PostgreSQL is the other way round.
CYCLIC_FOREIGN_KEYS = [
    # (name, table, column, referred table)
    (
        "fk_guild_active_model_version_id_model_version",
        "guild",
        "active_model_version_id",
        "model_version",
    ),
    (
        "fk_composition_parent_candidate_id_candidate",
        "composition",
        "parent_candidate_id",
        "candidate",
    ),
]


def _on_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def _inline_cyclic_fk(table: str) -> list[sa.ForeignKeyConstraint]:
    if not _on_sqlite():
        return []
    return [
        sa.ForeignKeyConstraint([column], [f"{referred}.id"], name=name, ondelete="SET NULL")
        for name, owner, column, referred in CYCLIC_FOREIGN_KEYS
        if owner == table
    ]


def upgrade() -> None:
    op.create_table(
        "guild",
        sa.Column("id", SNOWFLAKE, autoincrement=False, nullable=False),
        sa.Column("active_model_version_id", ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_guild"),
        *_inline_cyclic_fk("guild"),
    )
    op.create_table(
        "model_version",
        sa.Column("id", ID, nullable=False),
        sa.Column("guild_id", SNOWFLAKE, nullable=False),
        sa.Column("parent_id", ID, nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_version"),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guild.id"], name="fk_model_version_guild_id_guild", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["model_version.id"],
            name="fk_model_version_parent_id_model_version",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(
            "status IN ('ready', 'rejected')", name=op.f("ck_model_version_status_known")
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_model_version_guild_id_created_at", "model_version", ["guild_id", "created_at"]
    )
    op.create_index("ix_model_version_parent_id", "model_version", ["parent_id"])

    op.create_table(
        "seed",
        sa.Column("id", ID, nullable=False),
        sa.Column("guild_id", SNOWFLAKE, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("uploader_id", SNOWFLAKE, nullable=False),
        sa.Column("midi", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("notes", sa.Integer(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_seed"),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guild.id"], name="fk_seed_guild_id_guild", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("guild_id", "name", name="uq_seed_guild_id_name"),
        sa.UniqueConstraint("guild_id", "sha256", name="uq_seed_guild_id_sha256"),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "composition",
        sa.Column("id", ID, nullable=False),
        sa.Column("guild_id", SNOWFLAKE, nullable=False),
        sa.Column("channel_id", SNOWFLAKE, nullable=False),
        sa.Column("message_id", SNOWFLAKE, nullable=True),
        sa.Column("requester_id", SNOWFLAKE, nullable=False),
        sa.Column("parent_candidate_id", ID, nullable=True),
        sa.Column("seed_id", ID, nullable=True),
        sa.Column("seed_midi", sa.LargeBinary(), nullable=True),
        sa.Column("params", JSON, nullable=False),
        sa.Column("model_version_id", ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_composition"),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guild.id"], name="fk_composition_guild_id_guild", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["seed_id"], ["seed.id"], name="fk_composition_seed_id_seed", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
            name="fk_composition_model_version_id_model_version",
            ondelete="SET NULL",
        ),
        *_inline_cyclic_fk("composition"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_composition_guild_id_created_at", "composition", ["guild_id", "created_at"])
    op.create_index("ix_composition_parent_candidate_id", "composition", ["parent_candidate_id"])
    op.create_index("ix_composition_seed_id", "composition", ["seed_id"])
    op.create_index("ix_composition_model_version_id", "composition", ["model_version_id"])

    op.create_table(
        "candidate",
        sa.Column("id", ID, nullable=False),
        sa.Column("composition_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("midi", sa.LargeBinary(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("notes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_candidate"),
        sa.ForeignKeyConstraint(
            ["composition_id"],
            ["composition.id"],
            name="fk_candidate_composition_id_composition",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "composition_id", "position", name="uq_candidate_composition_id_position"
        ),
        # Target of vote's composite foreign key.
        sa.UniqueConstraint("composition_id", "id", name="uq_candidate_composition_id_id"),
        sa.CheckConstraint("position >= 1", name=op.f("ck_candidate_position_positive")),
        sa.CheckConstraint(
            "notes >= 0 AND seconds >= 0", name=op.f("ck_candidate_figures_non_negative")
        ),
        sqlite_autoincrement=True,
    )

    op.create_table(
        "vote",
        sa.Column("composition_id", ID, autoincrement=False, nullable=False),
        sa.Column("user_id", SNOWFLAKE, autoincrement=False, nullable=False),
        sa.Column("candidate_id", ID, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        # One vote per member per composition.
        sa.PrimaryKeyConstraint("composition_id", "user_id", name="pk_vote"),
        # A vote's candidate belongs to the vote's composition.
        sa.ForeignKeyConstraint(
            ["composition_id", "candidate_id"],
            ["candidate.composition_id", "candidate.id"],
            name="fk_vote_composition_id_candidate_id_candidate",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_vote_composition_id_candidate_id", "vote", ["composition_id", "candidate_id"]
    )

    op.create_table(
        "finetune_run",
        sa.Column("id", ID, nullable=False),
        sa.Column("guild_id", SNOWFLAKE, nullable=False),
        sa.Column("requester_id", SNOWFLAKE, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("model_version_id", ID, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=True),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_finetune_run"),
        sa.ForeignKeyConstraint(
            ["guild_id"], ["guild.id"], name="fk_finetune_run_guild_id_guild", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_version.id"],
            name="fk_finetune_run_model_version_id_model_version",
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')",
            name=op.f("ck_finetune_run_status_known"),
        ),
        sa.CheckConstraint(
            "progress >= 0 AND progress <= 1", name=op.f("ck_finetune_run_progress_fraction")
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_finetune_run_guild_id_created_at", "finetune_run", ["guild_id", "created_at"]
    )
    op.create_index("ix_finetune_run_model_version_id", "finetune_run", ["model_version_id"])
    # At most one queued or running run per guild, enforced by the database.
    op.create_index(
        "uq_finetune_run_guild_id_active",
        "finetune_run",
        ["guild_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_RUN),
        postgresql_where=sa.text(ACTIVE_RUN),
    )

    if not _on_sqlite():
        for name, table, column, referred in CYCLIC_FOREIGN_KEYS:
            op.create_foreign_key(name, table, referred, [column], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    if not _on_sqlite():
        for name, table, _column, _referred in CYCLIC_FOREIGN_KEYS:
            op.drop_constraint(name, table, type_="foreignkey")
    # Indexes go with their tables.
    for table in (
        "finetune_run",
        "vote",
        "candidate",
        "composition",
        "seed",
        "model_version",
        "guild",
    ):
        op.drop_table(table)
