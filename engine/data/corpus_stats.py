"""What a set of MIDI files holds: notes per GM family and program, velocities, keys.

Measures the training corpus before and after augmentation (`python -m engine data stats`).
Keys are found per piece with Krumhansl-Schmuckler (engine.evaluation.musical_stats.find_key).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from symusic import Score
from tqdm import tqdm

from engine.api.instruments import DRUMS, GM_FAMILIES, family_of
from engine.evaluation.musical_stats import NAMES, Notes, find_key

# Velocity bands named after the dynamics they usually stand for.
VELOCITY_BANDS = (
    ("ppp", 1, 23),
    ("pp", 24, 39),
    ("p", 40, 55),
    ("mp", 56, 71),
    ("mf", 72, 87),
    ("f", 88, 103),
    ("ff", 104, 119),
    ("fff", 120, 127),
)


def measure_files(paths: Iterable[Path]) -> dict:
    families: Counter[str] = Counter()
    programs: Counter[int] = Counter()
    velocities = np.zeros(128, dtype=np.int64)
    keys: Counter[str] = Counter()
    pieces = unreadable = 0
    for path in tqdm(list(paths), desc="measure", unit="piece"):
        try:
            score = Score(path)
        except Exception:  # as in tokenizing: an unreadable file is left out
            unreadable += 1
            continue
        pieces += 1
        for track in score.tracks:
            if not track.note_num():
                continue
            program = -1 if track.is_drum else track.program
            families[family_of(program)] += track.note_num()
            programs[program] += track.note_num()
            velocities += np.bincount(
                track.notes.numpy()["velocity"].astype(np.int64), minlength=128
            )[:128]
        key = find_key(Notes.of(score))
        keys[str(key) if key else "none"] += 1
    notes = sum(families.values())
    return {
        "pieces": pieces,
        "unreadable": unreadable,
        "notes": notes,
        "families": {f: families.get(f, 0) for f in (*GM_FAMILIES, DRUMS)},
        "programs": {str(p): n for p, n in sorted(programs.items())},
        "velocity_bands": {
            name: int(velocities[lo : hi + 1].sum()) for name, lo, hi in VELOCITY_BANDS
        },
        "keys": dict(keys.most_common()),
    }


def render_stats(stats: dict) -> str:
    """The measurement as three small text tables."""
    notes = max(1, stats["notes"])
    lines = [
        f"{stats['pieces']:,} pieces, {stats['notes']:,} notes"
        + (f" ({stats['unreadable']} unreadable)" if stats["unreadable"] else "")
    ]
    lines.append("\nnotes per GM family:")
    lines += [
        f"  {family:<22}{count / notes:7.2%}  {count:>10,}"
        for family, count in stats["families"].items()
        if count
    ]
    programs = {int(p) for p, n in stats["programs"].items() if n}
    lines.append(
        f"  programs used: {len(programs - {-1})} of 128"
        + (", and drums" if -1 in programs else ", no drums")
    )
    lines.append("\nvelocities:")
    lines += [f"  {band:<5}{count / notes:7.2%}" for band, count in stats["velocity_bands"].items()]
    pieces = max(1, stats["pieces"])
    tonics = Counter()
    for key, count in stats["keys"].items():
        tonics[key.split()[0]] += count
    lines.append("\nkeys (Krumhansl-Schmuckler, share of pieces):")
    lines += [f"  {key:<10}{count / pieces:7.2%}" for key, count in list(stats["keys"].items())[:8]]
    lines.append(
        f"  {len(stats['keys'])} keys found; by tonic: "
        + ", ".join(f"{t} {tonics.get(t, 0) / pieces:.0%}" for t in NAMES)
    )
    return "\n".join(lines)
