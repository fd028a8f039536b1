"""Bach chorales from music21's corpus as MIDI files: a ready-made "server" for tests and
benchmarks of fine-tuning (four-part harmony, far from the folk tunes most of the corpus is).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from engine.data.corpus import convert_score_file, music21_corpus_dir, split_of

CHORALE_GLOB = "bwv*.mxl"


def chorale_sources(*, heldout_first: bool = True) -> list[Path]:
    """music21's chorales, the base model's held-out ones first (it never trained on them)."""
    sources = sorted((music21_corpus_dir() / "bach").glob(CHORALE_GLOB))

    def unseen(path: Path) -> bool:
        return split_of(f"bach/{path.stem}") == "valid"

    return sorted(sources, key=lambda p: not unseen(p)) if heldout_first else sources


def convert_chorales(count: int, out_dir: Path, *, workers: int = 2) -> list[Path]:
    """The first `count` chorales as MIDI in out_dir (kept between calls); skips unreadable."""
    out_dir = Path(out_dir)
    jobs = [(str(src), str(out_dir / f"{src.stem}.mid")) for src in chorale_sources()[:count]]
    todo = [job for job in jobs if not Path(job[1]).exists()]
    if todo:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(convert_score_file, *zip(*todo, strict=True)))
    return [Path(out) for _, out in jobs if Path(out).exists()]
