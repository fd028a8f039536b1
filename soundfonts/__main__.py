"""`python -m soundfonts`: print the soundfont that rendering will use, or why there is none."""

from __future__ import annotations

import os
import sys

from soundfonts import ENV_VAR, SoundfontNotFound, find_soundfont

try:
    print(find_soundfont(os.environ.get(ENV_VAR)))
except SoundfontNotFound as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
