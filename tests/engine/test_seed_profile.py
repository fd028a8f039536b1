"""What a seed profile reads: instruments, key, scale, dynamics, groove."""

from __future__ import annotations

import numpy as np
import pytest
from symusic import Note, Score, TimeSignature, Track

from engine.evaluation.musical_stats import Key
from engine.generation.seed_profile import DRUMS, profile_seed, scale_of

TPQ = 480


def _score(tracks: list[Track], numerator: int = 4, denominator: int = 4) -> Score:
    score = Score(TPQ)
    score.time_signatures.append(TimeSignature(0, numerator, denominator))
    score.tracks.extend(tracks)
    return score


def _track(program: int, notes: list[tuple[float, int, float, int]], drum: bool = False) -> Track:
    track = Track("t", program, drum)
    for beat, pitch, length, velocity in notes:
        track.notes.append(Note(int(beat * TPQ), int(length * TPQ), pitch, velocity))
    return track


def test_the_band_seed_has_its_four_parts_and_its_key(examples) -> None:
    profile = profile_seed(Score(str(examples / "band.mid")))
    assert {p.program for p in profile.parts} == {73, 0, 33, DRUMS}
    assert profile.drums is not None and profile.drums.notes == 32
    flute = next(p for p in profile.parts if p.program == 73)
    assert flute.monophonic and 60 < flute.low <= flute.high < 84
    piano = next(p for p in profile.parts if p.program == 0)
    assert not piano.monophonic  # it plays chords
    assert profile.key == Key(0, minor=False) and profile.key_confidence > 0.8
    assert profile.bars == 4 and (profile.numerator, profile.denominator) == (4, 4)
    assert profile.velocity_low >= 60 and profile.velocity_high <= 90


def test_a_six_eight_tune_keeps_its_compound_grid() -> None:
    # Dotted-quarter pulse with a jig's long-short pattern: onsets on eighths 0, 2, 3, 5.
    notes = [
        (bar * 3 + eighth / 2, 67 + (eighth % 3), 0.5, 80)
        for bar in range(4)
        for eighth in (0, 2, 3, 5)
    ]
    profile = profile_seed(_score([_track(73, notes)], 6, 8))
    assert (profile.numerator, profile.denominator) == (6, 8)
    assert len(profile.onset_profile) == 6 * 12
    used = set(np.flatnonzero(profile.onset_profile))
    assert used == {0, 24, 36, 60}  # eighths of 12 positions each
    assert sum(profile.onset_profile) == pytest.approx(1.0)


def test_a_blues_seed_keeps_its_blue_notes_in_scale() -> None:
    # C blues: C Eb F F# G Bb, each a beat long, four times over.
    riff = [60, 63, 65, 66, 67, 70, 67, 65]
    notes = [(i, riff[i % len(riff)], 1, 80) for i in range(32)]
    profile = profile_seed(_score([_track(65, notes)]))
    assert {3, 10} <= profile.scale  # Eb and Bb belong, whatever the key found


def test_drums_alone_have_no_key_and_every_pitch_class_fits() -> None:
    hits = [(i / 2, 36 if i % 4 == 0 else 42, 0.25, 90) for i in range(32)]
    profile = profile_seed(_score([_track(0, hits, drum=True)]))
    assert profile.key is None and profile.pitched == ()
    assert profile.scale == frozenset(range(12))


def test_scales() -> None:
    assert scale_of(Key(0, minor=False)) == {0, 2, 4, 5, 7, 9, 11}
    assert scale_of(Key(9, minor=True)) == {9, 11, 0, 2, 4, 5, 7, 8}  # A minor + G#
