"""Small MIDI pieces built in code, and one real FluidSynth renderer for the whole session."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.audio.render import Renderer

TPQ = 480
PIANO, VIOLIN, BASS = 0, 40, 33
KICK, SNARE, HIHAT = 36, 38, 42


def build(
    parts: list[tuple[int, bool, list[tuple[float, float, int]]]],
    *,
    bpm: float = 120.0,
    metre: tuple[int, int] = (4, 4),
) -> Score:
    """A score from (program, is_drum, [(start_beat, beats, pitch), ...]) parts."""
    score = Score(TPQ)
    score.tempos.append(Tempo(0, bpm))
    score.time_signatures.append(TimeSignature(0, *metre))
    for program, is_drum, notes in parts:
        track = Track(f"program {program}", program, is_drum)
        for start, beats, pitch in notes:
            track.notes.append(Note(round(start * TPQ), round(beats * TPQ), pitch, 96))
        score.tracks.append(track)
    return score


@pytest.fixture
def build_score() -> Callable[..., Score]:
    return build


@pytest.fixture
def scale() -> Score:
    """Piano, 120 bpm, eight quarter notes C4..C5: ends at 4.0 s."""
    pitches = [60, 62, 64, 65, 67, 69, 71, 72]
    return build([(PIANO, False, [(i, 1, p) for i, p in enumerate(pitches)])])


@pytest.fixture
def waltz() -> Score:
    """Violin in 3/4 at 96 bpm, four bars (12 beats of 0.625 s): ends at 7.5 s."""
    bar = [(0, 2, 67), (2, 1, 71)]
    notes = [(3 * b + s, d, p + b) for b in range(4) for s, d, p in bar]
    return build([(VIOLIN, False, notes)], bpm=96, metre=(3, 4))


@pytest.fixture
def drums() -> Score:
    """Two bars of kick/snare/hi-hat at 120 bpm with tick-short hits: ends at 4.0 s."""
    hits = [(b, 1 / 16, KICK if b % 2 == 0 else SNARE) for b in range(8)]
    hits += [(b + 0.5, 1 / 16, HIHAT) for b in range(7)] + [(7.5, 0.5, HIHAT)]
    return build([(0, True, hits)])


@pytest.fixture
def band() -> Score:
    """Piano, bass, violin and drums together: ends at 4.0 s."""
    return build(
        [
            (PIANO, False, [(b, 1, 60 + (b % 4) * 2) for b in range(8)]),
            (BASS, False, [(b, 2, 36) for b in range(0, 8, 2)]),
            (VIOLIN, False, [(0, 8, 76)]),
            (0, True, [(b, 0.25, KICK) for b in range(8)]),
        ]
    )


@pytest.fixture(scope="session")
def renderer() -> Iterator[Renderer]:
    r = Renderer()
    yield r
    r.close()
