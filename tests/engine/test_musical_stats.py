"""Musical statistics on inputs whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from engine.evaluation.musical_stats import (
    DRUMS,
    FEATURES,
    BarNotes,
    Key,
    Notes,
    bar_lines,
    bar_patterns,
    bars_match,
    bars_written,
    drum_bar_share,
    empty_beat_rate,
    features,
    find_key,
    in_scale_share,
    instruments,
    instruments_kept,
    kde,
    loud_share,
    onset_profile,
    overlapping_area,
    pickup_bars,
    pitch_class_distance,
    pitch_class_entropy,
    pitch_range,
    polyphony,
    profile_distance,
    repeated_bar_share,
    reused_bar_share,
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


def test_a_keys_scale_is_its_key_signatures_diatonic_set():
    assert Key(0, minor=False).scale == {0, 2, 4, 5, 7, 9, 11}
    assert Key(9, minor=True).scale == Key(0, minor=False).scale  # A minor: no sharps either
    assert Key(2, minor=False).scale == {2, 4, 6, 7, 9, 11, 1}  # D major: F# and C#


def test_notes_in_a_keys_scale():
    c_major = Key(0, minor=False)
    assert in_scale_share(melody(scale(60, MAJOR_STEPS)), c_major) == 1.0
    assert in_scale_share(melody(list(range(60, 72))), c_major) == pytest.approx(7 / 12)
    assert in_scale_share(melody([61, 63, 66, 60]), c_major) == 0.25
    assert in_scale_share(melody([]), c_major) is None


def test_pitch_class_distance():
    assert pitch_class_distance(melody([60, 64, 67]), melody([72, 76, 55])) == 0.0  # octaves
    assert pitch_class_distance(melody([60, 60]), melody([62])) == 2.0  # nothing in common
    # Half C, half D against all C: |0.5 - 1| + |0.5 - 0| = 1.
    assert pitch_class_distance(melody([60, 62]), melody([60])) == pytest.approx(1.0)
    assert pitch_class_distance(melody([]), melody([60])) == 2.0


def test_bar_notes_place_every_note_in_its_bar_drums_included():
    s = score(
        track([(0, 1, 60), (1.5, 1, 62), (2.99, 1, 64), (6, 1, 65)]),
        track([(3, 0.1, 36)], drum=True),
        metre=(3, 4),
    )
    notes = BarNotes.of(s, 2)  # bars of 3 beats: [0, 3), [3, 6); the note at 6 is outside
    assert notes.bars == 2 and notes.bar_steps.tolist() == [36, 36]
    # The onset a hundredth of a beat before the bar line is heard on it: bar 1, step 0.
    placed = sorted(
        zip(
            notes.bar.tolist(),
            notes.step.tolist(),
            notes.pitch.tolist(),
            notes.drum.tolist(),
            strict=True,
        )
    )
    assert placed == [(0, 0, 60, False), (0, 18, 62, False), (1, 0, 36, True), (1, 0, 64, False)]
    assert len(notes) == 4 and notes.per_bar() == 2.0
    assert len(BarNotes.of(score(), 4)) == 0 and BarNotes.of(score(), 4).per_bar() == 0.0


def test_bars_written_count_to_the_end_of_the_last_note():
    assert bars_written(score(track([(0, 1, 60), (7, 1, 62)]))) == 2  # ends on bar line 2
    assert bars_written(score(track([(0, 1, 60), (7, 1.5, 62)]))) == 3  # rings into bar 3
    assert bars_written(score(track([(0, 1, 60), (7, 1, 62)]), metre=(6, 8))) == 3  # 3-beat bars
    assert bars_written(score()) == 0


def test_a_pickup_bar_is_counted_apart():
    # A continuation written on inside the seed's last bar opens with the rest of that bar.
    s = score(track([(0, 1, 60), (1.5, 8, 62)]), metre=(6, 16))  # 1.5 beats, then 4/4
    s.time_signatures.append(TimeSignature(round(1.5 * TPQ), 4, 4))
    assert (bars_written(s), pickup_bars(s)) == (3, 1)
    assert pickup_bars(score(track([(0, 1, 60)]), metre=(4, 4))) == 0
    same = score(track([(0, 1, 60)]), metre=(4, 4))
    same.time_signatures.append(TimeSignature(4 * TPQ, 4, 4))  # restated, not a pickup
    assert pickup_bars(same) == 0


def test_drum_bar_share():
    s = score(
        track([(b, 1, 60) for b in range(16)]),
        track([(0, 0.1, 36), (0.5, 0.1, 42), (9, 0.1, 38)], drum=True),
    )
    assert drum_bar_share(BarNotes.of(s, 4)) == 0.5  # drums in bars 0 and 2 of 4
    assert drum_bar_share(BarNotes.of(s, 8)) == 0.25  # bars the score never reaches count


def test_onset_profiles_compare_where_notes_start_in_the_bar():
    on_beats = BarNotes.of(score(track([(b, 1, 60) for b in range(8)])), 2)
    profile = onset_profile(on_beats)
    assert len(profile) == 48 and profile[[0, 12, 24, 36]].tolist() == [0.25] * 4
    other_pitches = BarNotes.of(score(track([(b, 1, 70 + b) for b in range(8)])), 2)
    assert profile_distance(profile, onset_profile(other_pitches)) == 0.0
    offbeats = BarNotes.of(score(track([(b + 0.5, 0.5, 60) for b in range(8)])), 2)
    assert profile_distance(profile, onset_profile(offbeats)) == 1.0
    half = BarNotes.of(score(track([(b * 0.5, 0.5, 60) for b in range(16)])), 2)
    assert profile_distance(profile, onset_profile(half)) == pytest.approx(0.5)
    # A 6/8 bar (36 steps) of dotted quarters against 4/4 on the beat: only beat 1 is shared.
    six_eight = BarNotes.of(score(track([(b * 1.5, 1.5, 60) for b in range(4)]), metre=(6, 8)), 2)
    assert len(onset_profile(six_eight)) == 36
    assert profile_distance(profile, onset_profile(six_eight)) == pytest.approx(0.75)
    assert profile_distance(profile, onset_profile(BarNotes.of(score(), 2))) == 1.0


def test_repeated_and_reused_bars():
    riff = [(0, 0.5, 60), (0.5, 0.5, 62), (1, 1, 64), (2, 1, 65), (3, 1, 67)]
    varied = riff[:4] + [(3, 1, 69)]  # 4 of 5 pairs kept: a repeat
    new = riff[:3] + [(2, 1, 71), (3, 1, 72)]  # 3 of 5: not one
    bars = [riff, new, varied, new[:2], []]
    piece = score(track([(4 * b + t, d, p) for b, notes in enumerate(bars) for t, d, p in notes]))
    patterns = bar_patterns(BarNotes.of(piece, 5))
    assert [len(p) for p in patterns] == [5, 5, 5, 2, 0]
    assert bars_match(patterns[0], patterns[2]) and not bars_match(patterns[0], patterns[1])
    assert not bars_match(patterns[1], patterns[3])  # a subset is not a repeat
    # Of the 4 bars with notes, bar 2 repeats bar 0; the silent bar does not count.
    assert repeated_bar_share(patterns) == 0.25
    seed = bar_patterns(BarNotes.of(score(track(new)), 1))
    assert reused_bar_share(patterns, seed) == 0.25  # bar 1; bar 3 is only a part of it
    seed = bar_patterns(BarNotes.of(score(track(new + [(4 + t, d, p) for t, d, p in riff])), 2))
    assert reused_bar_share(patterns, seed) == 0.75  # bars 0 and 2 match the riff, 1 the other
    assert repeated_bar_share([frozenset()]) is None
    assert reused_bar_share([frozenset()], seed) is None


def test_loud_notes_and_kept_instruments():
    loud = Track(program=0)
    for i, velocity in enumerate([127, 100, 120, 64]):
        loud.notes.append(Note(i * TPQ, TPQ, 60, velocity))
    assert loud_share(BarNotes.of(score(loud), 1)) == 0.5
    assert loud_share(BarNotes.of(score(), 1)) is None
    seed = score(
        track([(0, 1, 60)]), track([(0, 1, 36)], program=33), track([(0, 1, 38)], drum=True)
    )
    assert instruments_kept(
        seed, score(track([(0, 1, 60)]), track([(0, 1, 60)], program=40))
    ) == pytest.approx(1 / 3)
    assert instruments_kept(seed, seed) == 1.0
