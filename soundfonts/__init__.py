"""Find the General MIDI soundfont used for rendering.

Search order (first hit wins, see README.md beside this file):
1. the configured font, ``$MOTIF_SOUNDFONT`` (read by the process's settings and passed in; if
   set, it must exist: a typo must not silently change the sound);
2. ``*.sf2`` / ``*.sf3`` files placed in this folder (alphabetical);
3. FluidR3_GM from the system (Debian/Ubuntu: ``fluid-soundfont-gm``);
4. other system GM fonts (``/usr/share/sounds/sf2/*.sf2``, ``/usr/share/soundfonts/*``);
5. the small TimGM6mb.sf2 bundled inside the pretty_midi package.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

ENV_VAR = "MOTIF_SOUNDFONT"
FOLDER = Path(__file__).resolve().parent
SYSTEM_FLUIDR3 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
# (directory, glob) pairs searched after FluidR3; Debian's timgm6mb-soundfont and Arch/Fedora
# packages install here.
SYSTEM_DIRS: tuple[tuple[Path, str], ...] = (
    (Path("/usr/share/sounds/sf2"), "*.sf2"),
    (Path("/usr/share/soundfonts"), "*.sf[23]"),
)
INSTALL_HINT = (
    "install one with `apt-get install fluid-soundfont-gm` (or `timgm6mb-soundfont`), "
    f"put a .sf2/.sf3 file in {FOLDER}, or set {ENV_VAR}=/path/to/font.sf2"
)


class SoundfontNotFound(FileNotFoundError):
    """No usable soundfont; the message says how to get one."""


def find_soundfont(configured: str | Path | None = None) -> Path:
    """Return the soundfont to render with: `configured` (the MOTIF_SOUNDFONT setting) if
    given, else the first of the search order above."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise SoundfontNotFound(f"{ENV_VAR}={path} does not exist: fix or unset it")
        return path
    for path in _candidates():
        if path.is_file():
            return path
    raise SoundfontNotFound(f"no General MIDI soundfont found: {INSTALL_HINT}")


def _candidates() -> Iterator[Path]:
    yield from sorted(p for p in FOLDER.iterdir() if p.suffix.lower() in (".sf2", ".sf3"))
    yield SYSTEM_FLUIDR3
    for directory, pattern in SYSTEM_DIRS:
        if directory.is_dir():
            yield from sorted(directory.glob(pattern))
    bundled = _pretty_midi_font()
    if bundled is not None:
        yield bundled


def _pretty_midi_font() -> Path | None:
    # Locate the package without importing it (importing pretty_midi pulls in mido and friends).
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "TimGM6mb.sf2"
