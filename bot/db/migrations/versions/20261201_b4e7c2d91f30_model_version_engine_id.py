"""A model version names the engine's version by its id, not by a path of the engine's machine.

model_version.path (the checkpoint's absolute path, <data dir>/models/<guild id>/<name>.pt)
becomes model_version.engine_id, "<guild id>/<name>": the engine resolves the id to its own file
(engine.serving.model_store), so the bot holds nothing tied to one machine. Going down writes
the paths back under the data dir the bot is configured with (MOTIF_DATA_DIR, default ./data),
which is where the engine kept them.

Revision ID: b4e7c2d91f30
Revises: 8d3e1f0a9b27
Create Date: 2026-12-01 18:00:00.000000+00:00
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath

import sqlalchemy as sa
from alembic import op

revision: str = "b4e7c2d91f30"
down_revision: str | None = "8d3e1f0a9b27"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _engine_id(path: str) -> str:
    checkpoint = PurePath(path)
    return f"{checkpoint.parent.name}/{checkpoint.stem}"


def _path(engine_id: str) -> str:
    data_dir = Path(os.environ.get("MOTIF_DATA_DIR") or "data").resolve()
    return str(data_dir / "models" / f"{engine_id}.pt")


def _rename(old: str, new: str, convert: Callable[[str], str]) -> None:
    # RENAME COLUMN: SQLite (3.25+) and PostgreSQL alike, without rebuilding the table.
    op.execute(f"ALTER TABLE model_version RENAME COLUMN {old} TO {new}")
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT id, {new} FROM model_version")).all()
    for version_id, value in rows:
        bind.execute(
            sa.text(f"UPDATE model_version SET {new} = :value WHERE id = :id"),
            {"value": convert(value), "id": version_id},
        )


def upgrade() -> None:
    _rename("path", "engine_id", _engine_id)


def downgrade() -> None:
    _rename("engine_id", "path", _path)
