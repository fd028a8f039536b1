"""Which bot process owns a fine-tuning run, and when it last said it is alive.

Two bot processes may share a database (a restart overlapping the old process, or shards).
A process that starts must fail only the runs whose owner is gone, never a live one of
another process: finetune_run.owner names the process that runs it, and heartbeat_at is
renewed while it runs (a lease). Runs from before this revision have neither: they belong to
no live process.

Revision ID: 5a72fe5768c7
Revises: f97311720a7d
Create Date: 2026-11-30 12:00:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "5a72fe5768c7"
down_revision: str | None = "f97311720a7d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
OWNER = sa.String(64)
ACTIVE_RUN_INDEX = "uq_finetune_run_guild_id_active"
ACTIVE_RUN = "status IN ('queued', 'running')"


def _on_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    # Adding nullable columns needs no table rebuild, on SQLite either.
    op.add_column("finetune_run", sa.Column("owner", OWNER, nullable=True))
    op.add_column("finetune_run", sa.Column("heartbeat_at", TIMESTAMP, nullable=True))


def downgrade() -> None:
    # Rebuilding finetune_run on SQLite would not carry the partial unique index's WHERE
    # clause over, so it is dropped first and recreated as the initial revision made it.
    op.drop_index(ACTIVE_RUN_INDEX, table_name="finetune_run")
    with _altering("finetune_run") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
    op.create_index(
        ACTIVE_RUN_INDEX,
        "finetune_run",
        ["guild_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_RUN),
        postgresql_where=sa.text(ACTIVE_RUN),
    )


@contextmanager
def _altering(table: str) -> Iterator[BatchOperations]:
    """Batch operations on `table`. SQLite rebuilds the table for them (its plain indexes and
    foreign keys are reflected and recreated); PostgreSQL alters it in place. The rebuilt
    table keeps AUTOINCREMENT and its high-water mark, so ids are still never reused.
    (As revision f97311720a7d does it: a migration keeps its own copy of what it runs.)"""
    if not _on_sqlite():
        with op.batch_alter_table(table) as batch:
            yield batch
        return
    sequence = sa.text("SELECT seq FROM sqlite_sequence WHERE name = :table")
    seq = op.get_bind().execute(sequence, {"table": table}).scalar()
    with op.batch_alter_table(table, table_kwargs={"sqlite_autoincrement": True}) as batch:
        yield batch
    if seq is not None:
        # The copy's counter only reached the highest id still present.
        bind = op.get_bind()
        bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :table"), {"table": table})
        bind.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:table, :seq)"),
            {"table": table, "seq": seq},
        )
