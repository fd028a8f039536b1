"""Where the engine's source tree is (light: no torch); the data dir is a setting
(MOTIF_DATA_DIR, engine.api.config)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
