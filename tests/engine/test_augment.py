"""Augmented copies: same rhythm, other instruments by role and register, other keys and
dynamics, and the same file every time for the same piece."""

from __future__ import annotations

import numpy as np
import pytest

from engine.api.instruments import family_of
from engine.data.augment import RANGES, ROLES, assign_roles, augment, describe_parts


@pytest.fixture
def chorale(build_score):
    """Four voices (S A T B), one track each, all on the piano as music21 writes them."""
    soprano = [67, 69, 71, 72, 74, 72, 71, 69]
    alto = [62, 64, 62, 64, 65, 64, 62, 60]
    tenor = [59, 57, 55, 57, 59, 55, 55, 57]
    bass = [43, 45, 47, 48, 50, 48, 43, 45]
    return build_score(
        [(0, False, [(i, 1, p) for i, p in enumerate(v)]) for v in (soprano, alto, tenor, bass)]
    )


@pytest.fixture
def tune(build_score):
    pitches = [62, 66, 69, 74, 73, 71, 69, 66, 64, 62, 64, 66, 67, 69, 71, 74]
    return build_score([(0, False, [(i / 2, 0.5, p) for i, p in enumerate(pitches)])])


def notes_of(score):
    return [track.notes.numpy() for track in score.tracks]


def test_the_same_piece_and_copy_give_the_same_file(chorale):
    first = augment(chorale, "bach/bwv1.6", 1).dumps_midi()
    assert augment(chorale, "bach/bwv1.6", 1).dumps_midi() == first
    assert augment(chorale, "bach/bwv1.6", 2).dumps_midi() != first
    assert augment(chorale, "bach/bwv2.6", 1).dumps_midi() != first


def test_roles_follow_register(chorale, build_score):
    roles = assign_roles(describe_parts(chorale))
    assert roles == {0: "melody", 1: "inner", 2: "inner", 3: "bass"}
    chords = build_score(
        [(0, False, [(0, 2, 60), (0, 2, 64), (0, 2, 67), (2, 2, 62), (2, 2, 65), (2, 2, 69)])]
    )
    assert assign_roles(describe_parts(chords)) == {0: "chords"}


def test_copies_keep_the_rhythm_and_voice_each_part_within_its_instrument(chorale):
    original = notes_of(chorale)
    for copy in range(1, 41):
        out = augment(chorale, "bach/bwv1.6", copy)
        moved = notes_of(out)
        shifts = set()
        for before, after, track in zip(original, moved, out.tracks, strict=True):
            assert np.array_equal(before["time"], after["time"])
            assert np.array_equal(before["duration"], after["duration"])
            step = set(after["pitch"].astype(int) - before["pitch"].astype(int))
            assert len(step) == 1, "a part moves as a whole"
            shifts.add(step.pop() % 12)
            low, high = RANGES[track.program]
            assert low <= after["pitch"].min() and after["pitch"].max() <= high
        assert len(shifts) == 1, f"every part is in the same new key (copy {copy}: {shifts})"


def test_chorale_voices_go_to_melody_bass_and_inner_instruments(chorale):
    top, bottom = set(), set()
    for copy in range(1, 61):
        out = augment(chorale, "bach/bwv1.6", copy)
        top.add(out.tracks[0].program)
        bottom.add(out.tracks[3].program)
    assert len(top) >= 15 and len(bottom) >= 8
    # Everything the lowest voice was given is a bass-role or a chordal instrument.
    assert bottom <= set(ROLES["bass"]) | set(ROLES["chords"])
    assert {family_of(p) for p in bottom} & {"bass"}
    assert {family_of(p) for p in top} >= {"reed", "pipe", "brass", "synth lead"}


def test_a_lone_tune_gets_many_instruments_keys_and_dynamics(tune):
    programs, keys, levels = set(), set(), []
    for copy in range(1, 81):
        out = augment(tune, "folk/tune", copy)
        track = out.tracks[0]
        programs.add(track.program)
        a = track.notes.numpy()
        keys.add(int(a["pitch"][0] - 62) % 12)
        levels.append(float(a["velocity"].mean()))
    assert len({family_of(p) for p in programs}) >= 10
    assert len(keys) == 12
    assert min(levels) < 50 and max(levels) > 100, "pp to ff"


def test_drums_keep_their_notes(band):
    out = augment(band, "band/loop", 1)
    drums = [t for t in out.tracks if t.is_drum]
    assert len(drums) == 1
    before = next(t for t in band.tracks if t.is_drum).notes.numpy()
    assert np.array_equal(drums[0].notes.numpy()["pitch"], before["pitch"])
