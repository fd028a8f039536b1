"""Quantising a performed seed (engine.generation.quantise): played notes land on the grid."""

from __future__ import annotations

import numpy as np
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.generation.quantise import looks_performed, quantise_score

TPQ = 480


def score_of(notes: list[tuple[int, int, int]], *, tempo_at: int = 0) -> Score:
    score = Score(TPQ)
    score.tempos.append(Tempo(tempo_at, 100.0))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    track = Track(program=0)
    for time, duration, pitch in notes:
        track.notes.append(Note(time, duration, pitch, 80))
    score.tracks.append(track)
    return score


def onsets(score: Score) -> list[int]:
    return score.tracks[0].notes.numpy()["time"].tolist()


def test_played_sixteenths_and_triplets_land_on_their_grids():
    rng = np.random.default_rng(0)
    sixteenths = [i * TPQ // 4 for i in range(16)]
    triplets = [4 * TPQ + i * TPQ // 3 for i in range(12)]
    written = sixteenths + triplets
    # Played 12-24 ticks (a 40th to a 20th of a beat) early or late; the first one late.
    late = [int(rng.integers(12, 25)) for _ in written]
    played = [
        t + d if (t == 0 or rng.random() < 0.5) else t - d
        for t, d in zip(written, late, strict=True)
    ]
    score = score_of([(t, TPQ // 4 - 10, 60 + i % 12) for i, t in enumerate(played)])
    assert looks_performed(score)

    quantised = quantise_score(score)

    assert onsets(quantised) == written
    assert not looks_performed(quantised)
    # The original is untouched: quantising is asked for, never done behind the member's back.
    assert onsets(score) == played


def test_a_grace_note_keeps_a_step_and_the_seed_keeps_its_length():
    # A 9-tick grace note before the beat, a chord spread over 25 ticks, a last note that
    # would snap past the seed's end.
    score = score_of(
        [(470, 9, 62), (481, 400, 64), (490, 400, 67), (506, 400, 71), (4 * TPQ - 100, 95, 72)]
    )
    end = score.end()

    quantised = quantise_score(score)
    notes = quantised.tracks[0].notes.numpy()

    assert notes["time"].tolist() == [480, 480, 480, 480, 4 * TPQ - 120]
    by_pitch = {
        int(p): (int(t), int(d))
        for t, d, p in zip(notes["time"], notes["duration"], notes["pitch"], strict=True)
    }
    assert by_pitch[62] == (480, TPQ // 4)  # the grace note sounds a sixteenth, not 0 ticks
    assert by_pitch[72] == (4 * TPQ - 120, end - (4 * TPQ - 120))  # cut at the seed's end
    assert quantised.end() == end
    assert sorted(notes["pitch"].tolist()) == [62, 64, 67, 71, 72]  # no note lost


def test_what_is_not_a_note_stays_where_it_was():
    score = score_of([(13, 200, 60), (TPQ * 2 + 11, 200, 64)], tempo_at=TPQ * 2 + 11)
    quantised = quantise_score(score)
    assert [t.time for t in quantised.tempos] == [TPQ * 2 + 11]
    assert [(ts.time, ts.numerator) for ts in quantised.time_signatures] == [(0, 4)]


def test_a_sequenced_seed_is_not_taken_for_a_performance():
    score = score_of([(i * TPQ // 2, TPQ // 2, 60) for i in range(8)])
    assert not looks_performed(score)
    assert onsets(quantise_score(score)) == onsets(score)


def _played_eighths(bars: int = 4) -> tuple[bytes, list[int]]:
    """A seed of eighth notes played 25-35 ticks (of 480) off the beat at 100 bpm, about a
    tokenizer step (a twelfth of a beat: less would round back onto the beat), and where a
    score writes them."""
    rng = np.random.default_rng(1)
    written = [i * TPQ // 2 for i in range(bars * 8)]
    played = [t + int(rng.integers(25, 36)) * (1 if i % 2 else -1) for i, t in enumerate(written)]
    played[0] = 13
    pitches = [60, 62, 64, 65, 67, 65, 64, 62]
    notes = [(t, TPQ // 2 - 30, pitches[i % 8]) for i, t in enumerate(played)]
    return score_of(notes).dumps_midi(), written


def _seed_onsets(midi: bytes, seam_seconds: float) -> list[int]:
    score = Score.from_midi(midi)
    tpq = score.ticks_per_quarter
    seam_ticks = seam_seconds * 100 / 60 * tpq  # the seed plays at 100 bpm
    return sorted(
        int(round(n.time * TPQ / tpq))
        for t in score.tracks
        for n in t.notes
        if n.time < seam_ticks - tpq / 8
    )


def test_quantise_reaches_the_seed_a_composition_plays(composer):
    """With `quantise` the seed played back at the head of each clip is the written one; without
    it, the member's performance plays as it was played."""
    from engine.api.schema import ComposeRequest

    seed, written = _played_eighths()
    asked = ComposeRequest(bars=2, candidates=1, seed=4, include_seed=True, quantise=True)
    [quantised] = composer.compose(seed, asked).candidates
    [as_played] = composer.compose(
        seed, ComposeRequest(bars=2, candidates=1, seed=4, include_seed=True)
    ).candidates

    seam = 4 * 4 * 60 / 100
    assert _seed_onsets(quantised.midi, seam) == written
    off_grid = [t for t in _seed_onsets(as_played.midi, seam) if t % (TPQ // 2)]
    assert len(off_grid) >= len(written) - 1
