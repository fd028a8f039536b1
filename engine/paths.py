"""Where the engine keeps its files (light: no torch)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def default_data_dir() -> Path:
    """MOTIF_DATA_DIR, as the bot reads it, else ./data."""
    return Path(os.environ.get("MOTIF_DATA_DIR", "data"))
