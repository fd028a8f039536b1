"""Pruned model versions and the channel a fine-tuning run reports to.

A model version becomes "pruned" when the engine deletes its checkpoint to save space: its
figures stay, it can never serve again. finetune_run.channel_id is where the run's result is
announced (NULL for runs from before this revision).

Revision ID: f97311720a7d
Revises: 3cbe342a2758
Create Date: 2026-11-26 10:00:00.000000+00:00
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision: str = "f97311720a7d"
down_revision: str | None = "3cbe342a2758"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SNOWFLAKE = sa.BigInteger()
STATUS_CHECK = "ck_model_version_status_known"
ACTIVE_RUN_INDEX = "uq_finetune_run_guild_id_active"
ACTIVE_RUN = "status IN ('queued', 'running')"


def _on_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


@contextmanager
def _altering(table: str) -> Iterator[BatchOperations]:
    """Batch operations on `table`. SQLite rebuilds the table for them (its plain indexes and
    foreign keys are reflected and recreated); PostgreSQL alters it in place. The rebuilt
    table keeps AUTOINCREMENT and its high-water mark, so ids are still never reused."""
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


def _replace_status_check(statuses: str) -> None:
    with _altering("model_version") as batch:
        batch.drop_constraint(op.f(STATUS_CHECK), type_="check")
        batch.create_check_constraint(op.f(STATUS_CHECK), f"status IN ({statuses})")


def upgrade() -> None:
    _replace_status_check("'ready', 'rejected', 'pruned'")
    with _altering("finetune_run") as batch:
        batch.add_column(sa.Column("channel_id", SNOWFLAKE, nullable=True))


def downgrade() -> None:
    # A pruned version has no checkpoint any more; "rejected" is the older schema's word for a
    # version that must never serve.
    op.execute("UPDATE model_version SET status = 'rejected' WHERE status = 'pruned'")
    _replace_status_check("'ready', 'rejected'")
    # Rebuilding finetune_run on SQLite would not carry the partial unique index's WHERE
    # clause over, so it is dropped first and recreated as the initial revision made it.
    op.drop_index(ACTIVE_RUN_INDEX, table_name="finetune_run")
    with _altering("finetune_run") as batch:
        batch.drop_column("channel_id")
    op.create_index(
        ACTIVE_RUN_INDEX,
        "finetune_run",
        ["guild_id"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_RUN),
        postgresql_where=sa.text(ACTIVE_RUN),
    )
