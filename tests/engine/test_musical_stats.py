"""Musical statistics on inputs whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.musical_stats import (
    DRUMS,
    FEATURES,
    Key,
    Notes,
    bar_lines,
    empty_beat_rate,
    features,
    find_key,
    instruments,
    kde,
    overlapping_area,
    pitch_class_entropy,
    pitch_range,
    polyphony,
    scale_consistency,
    seed_consistency,
    segment,
    tempo_at,
    time_signature_at,
)

TPQ = 480
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11, 12)
HARMONIC_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 11, 12)


def track(notes: list[tuple[float, float, int]], *, program: int = 0, drum: bool = False) -> Track:
    """A track from (onset in beats, duration in beats, pitch)."""
    t = Track(program=program, is_drum=drum)
    for onset, duration, pitch in notes:
        t.notes.append(Note(round(onset * TPQ), round(duration * TPQ), pitch, 80))
    return t


def score(*tracks: Track, metre: tuple[int, int] | None = None) -> Score:
    s = Score(TPQ)
    for t in tracks:
        s.tracks.append(t)
    if metre:
        s.time_signatures.append(TimeSignature(0, *metre))
    return s


def melody(pitches: list[int], beats: float = 1.0) -> Notes:
    return Notes.of(score(track([(i * beats, beats, p) for i, p in enumerate(pitches)])))


def scale(tonic: int, steps: tuple[int, ...]) -> list[int]:
    """Up and down the scale from `tonic` (a MIDI pitch), ending on the tonic."""
    up = [tonic + s for s in steps]
    return up + up[-2::-1]


@pytest.mark.parametrize("tonic", [60, 62, 66, 69])
def test_a_major_scale_is_wholly_in_one_scale(tonic):
    assert scale_consistency(melody(scale(tonic, MAJOR_STEPS))) == 1.0


def test_the_chromatic_scale_fits_seven_twelfths_of_a_scale():
    assert scale_consistency(melody(list(range(60, 72)))) == pytest.approx(7 / 12)


def test_a_chromatic_cluster_has_the_largest_pitch_class_entropy():
    cluster = Notes.of(score(track([(0, 1, p) for p in range(60, 72)])))
    assert pitch_class_entropy(cluster) == pytest.approx(math.log2(12))
    assert pitch_class_entropy(melody([60, 72, 48])) == 0.0  # one pitch class in octaves
    assert pitch_class_entropy(melody([60, 64])) == pytest.approx(1.0)


@pytest.mark.parametrize("tonic", range(60, 72))
def test_key_finding_recovers_the_key_of_a_transposed_scale(tonic):
    assert find_key(melody(scale(tonic, MAJOR_STEPS))) == Key(tonic % 12, minor=False)
    assert find_key(melody(scale(tonic, HARMONIC_MINOR_STEPS))) == Key(tonic % 12, minor=True)


def test_key_names_and_keyless_input():
    assert str(Key(9, minor=True)) == "A minor" and str(Key(3, minor=False)) == "Eb major"
    assert Key(9, minor=True).signature == Key(0, minor=False).signature == 0
    assert find_key(melody([])) is None
    assert find_key(melody(list(range(60, 72)))) is None  # every class equally long


def test_polyphony_counts_the_notes_sounding_together():
    assert polyphony(melody([60, 62, 64])) == 1.0  # repeated onsets do not overlap
    assert polyphony(Notes.of(score(track([(0, 4, 60), (0, 4, 64), (0, 4, 67)])))) == 3.0
    # Two notes overlapping for one of three beats: 4 note-beats over 3 audible beats.
    assert polyphony(Notes.of(score(track([(0, 2, 60), (1, 2, 64)])))) == pytest.approx(4 / 3)
    # Silence between notes does not lower it.
    assert polyphony(Notes.of(score(track([(0, 1, 60), (3, 1, 62)])))) == 1.0
    assert polyphony(melody([])) == 0.0


def test_empty_beat_rate():
    notes = Notes.of(score(track([(0, 1, 60), (2, 0.5, 62)])))
    assert empty_beat_rate(notes, 4) == 0.5
    held = Notes.of(score(track([(0.5, 2, 60)])))  # sounds in beats 0, 1 and 2
    assert empty_beat_rate(held, 4) == 0.25
    assert empty_beat_rate(melody([]), 8) == 1.0
    assert empty_beat_rate(melody([60, 62, 64, 65]), 4) == 0.0


def test_pitch_range_and_notes_per_bar_leave_drums_out():
    s = score(
        track([(0, 1, 60), (1, 1, 67), (2, 1, 55)]), track([(0, 1, 36), (1, 1, 38)], drum=True)
    )
    f = features(s, bars=2, beats=8)
    assert set(f) == set(FEATURES)
    assert f["pitch_range"] == 12 and pitch_range(melody([])) == 0
    assert f["notes_per_bar"] == 1.5
    assert f["empty_beat_rate"] == 5 / 8
    assert instruments(s) == {0, DRUMS}


def test_bar_lines_follow_time_signatures():
    s = score(track([(0, 1, 60)]), metre=(3, 4))
    s.time_signatures.append(TimeSignature(2 * 3 * TPQ, 6, 8))
    assert bar_lines(s, 4) == [0, 3 * TPQ, 6 * TPQ, 9 * TPQ, 12 * TPQ]
    assert bar_lines(score(track([])), 2) == [0, 4 * TPQ, 8 * TPQ]  # 4/4 by default


def test_a_segment_starts_at_zero_and_cuts_what_sounds_past_its_end():
    s = score(track([(0, 1, 60), (4, 1, 62), (7, 3, 64), (8, 1, 65)]))
    part, beats = segment(s, 1, 1)
    assert beats == 4
    notes = Notes.of(part)
    assert notes.onset.tolist() == [0, 3] and notes.pitch.tolist() == [62, 64]
    assert notes.duration.tolist() == [1, 1]


def test_tempo_and_metre_at_a_tick():
    s = score(track([(0, 1, 60)]), metre=(3, 4))
    s.tempos.append(Tempo(0, 90.0))
    s.tempos.append(Tempo(TPQ * 6, 120.0))
    assert tempo_at(s, 0) == pytest.approx(90, abs=1e-3)
    assert tempo_at(s, TPQ * 7) == pytest.approx(120, abs=1e-3)
    assert time_signature_at(s, TPQ) == "3/4"
    assert tempo_at(score(), 0) is None and time_signature_at(score(), 0) is None


def test_a_density_estimate_integrates_to_one():
    values = np.random.default_rng(0).normal(3.0, 2.0, 200)
    grid = np.linspace(-10, 16, 4000)
    assert np.trapezoid(kde(values, grid, 0.5), grid) == pytest.approx(1.0, abs=1e-3)


def test_overlapping_area():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 2000), rng.normal(0, 1, 2000)
    assert overlapping_area(a, b) == pytest.approx(1.0, abs=0.05)
    assert overlapping_area(a, a + 100) == pytest.approx(0.0, abs=1e-6)
    # Two unit normals one standard deviation apart share 2 * Phi(-1/2) = 0.617.
    assert overlapping_area(a, b + 1) == pytest.approx(0.617, abs=0.05)
    assert overlapping_area(a, b + 1) == pytest.approx(overlapping_area(b + 1, a))
    # Constant features (a monophonic set's polyphony) still compare.
    assert overlapping_area(np.ones(50), np.ones(80)) == pytest.approx(1.0, abs=1e-3)
    assert overlapping_area(np.ones(50), np.full(50, 2.0)) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="received 0 and 3"):
        overlapping_area(np.zeros(0), np.ones(3))


def test_seed_consistency():
    seed = score(
        track(list(zip(range(15), [1] * 15, scale(62, MAJOR_STEPS), strict=True))), metre=(3, 4)
    )
    seed.tempos.append(Tempo(0, 96.0))
    same = score(track([(0, 2, 62), (2, 1, 66), (3, 3, 69), (6, 3, 62)]), metre=(3, 4))
    same.tempos.append(Tempo(0, 96.0))
    assert seed_consistency(seed, same) == {
        "key": True,
        "key_signature": True,
        "tempo": True,
        "metre": True,
        "instruments": True,
    }
    other = score(track([(0, 2, 63), (2, 1, 67), (3, 3, 70), (6, 3, 63)], program=40), metre=(4, 4))
    other.tempos.append(Tempo(0, 130.0))
    assert seed_consistency(seed, other) == {
        "key": False,
        "key_signature": False,
        "tempo": False,
        "metre": False,
        "instruments": False,
    }
    # B minor shares D major's key signature.
    relative = score(track([(0, 3, 59), (3, 1, 62), (4, 2, 66), (6, 3, 59)]))
    relative.tempos.append(Tempo(0, 96.0))
    assert find_key(Notes.of(relative)) == Key(11, minor=True)
    assert seed_consistency(seed, relative)["key_signature"]
    # Without tempo or metre events, a MIDI file plays at 120 bpm in 4/4.
    bare = score(track([(0, 1, 60)]))
    assert seed_consistency(bare, bare)["tempo"] and seed_consistency(bare, bare)["metre"]
    assert seed_consistency(score(track([])), bare)["key"] is None
    assert seed_consistency(score(track([])), bare)["key_signature"] is None
