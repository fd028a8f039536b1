"""`python -m soundfonts`: print the soundfont that rendering will use, or why there is none."""

from __future__ import annotations

import sys

from soundfonts import SoundfontNotFound, find_soundfont

try:
    print(find_soundfont())
except SoundfontNotFound as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
