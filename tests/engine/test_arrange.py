"""Arrangement: who plays what, and the parts continued from the seed's own material."""

from __future__ import annotations

import numpy as np
from symusic import Note, Score, TimeSignature, Track

from engine.generation.arrange import (
    KEYBOARD,
    BarGrid,
    continue_parts,
    plan_arrangement,
    voice_by_register,
)
from engine.generation.seed_profile import DRUMS, profile_seed

TPQ = 24  # the tokenizer's resolution: what decoded continuations come in


def _track(program: int, notes, drum: bool = False, tpq: int = TPQ) -> Track:
    track = Track("t", program, drum)
    for beat, pitch, length, velocity in notes:
        track.notes.append(Note(int(beat * tpq), max(1, int(length * tpq)), pitch, velocity))
    return track


def _score(tracks, tpq: int = TPQ, numerator: int = 4) -> Score:
    score = Score(tpq)
    score.time_signatures.append(TimeSignature(0, numerator, 4))
    score.tracks.extend(tracks)
    return score


def _band(tpq: int = 480) -> Score:
    """Two bars: a kick/snare/hat groove with a tom, a bass on C then F, sax on top."""
    drums = [(b, 36 if b % 2 == 0 else 38, 0.25, 100) for b in range(8)]
    drums += [(b + 0.5, 42, 0.25, 60) for b in range(8)] + [(7.5, 45, 0.25, 90)]
    bass = [(0, 36, 2, 90), (2, 43, 2, 90), (4, 41, 2, 90), (6, 48, 2, 90)]
    sax = [(0, 72, 1, 80), (1, 74, 1, 80), (2, 76, 2, 80), (4, 77, 4, 80)]
    return _score(
        [_track(0, drums, True, tpq), _track(33, bass, tpq=tpq), _track(65, sax, tpq=tpq)], tpq
    )


def test_the_plan_gives_the_model_what_it_knows_and_continues_the_rest() -> None:
    profile = profile_seed(_band())
    plan = plan_arrangement(profile, known=frozenset({0, 65}))
    assert plan.written == {65}
    assert {p.program for p in plan.continued} == {33, DRUMS}
    assert plan.voiced == ()


def test_a_member_instrument_replaces_the_pitched_parts_it_knows() -> None:
    plan = plan_arrangement(profile_seed(_band()), known=frozenset({0, 65, 33}), instrument=56)
    assert plan.written == {56}
    assert {p.program for p in plan.continued} == {DRUMS}


def test_unknown_instruments_are_voiced_from_keyboard_lines() -> None:
    plan = plan_arrangement(profile_seed(_band()), known=frozenset({0}))
    assert plan.written == {KEYBOARD}
    assert {p.program for p in plan.voiced} == {33, 65}


def test_a_seed_of_drums_only_is_all_continued() -> None:
    drums = _score([_track(0, [(b, 36, 0.25, 100) for b in range(8)], True)])
    plan = plan_arrangement(profile_seed(drums), known=frozenset({0}))
    assert plan.written == frozenset() and not plan.model_writes
    assert plan.continued[0].program == DRUMS


def test_drums_keep_playing_every_bar_with_fills_of_their_own() -> None:
    seed = _band()
    profile = profile_seed(seed)
    output = _score([])
    grid = BarGrid(start=0, bar_ticks=4 * TPQ, bars=8)
    continue_parts(output, seed, profile, [profile.drums], grid, np.random.default_rng(0))
    (drums,) = output.tracks
    assert drums.is_drum
    notes = drums.notes.numpy()
    bars = notes["time"] // grid.bar_ticks
    assert set(bars.tolist()) == set(range(8))  # no bar left silent
    assert set(notes["pitch"].tolist()) <= {36, 38, 42, 45}  # no drum from nowhere
    assert notes["time"].max() < grid.end


def test_a_bass_loop_follows_the_new_harmony() -> None:
    seed = _band()
    profile = profile_seed(seed)
    bass = next(p for p in profile.parts if p.program == 33)
    # The model wrote F-A-C in bar 0 and C-E-G in bar 1: the bass should play F, then C.
    output = _score(
        [
            _track(
                0,
                [
                    (0, 65, 4, 80),
                    (0, 69, 4, 80),
                    (0, 72, 4, 80),
                    (4, 60, 4, 80),
                    (4, 64, 4, 80),
                    (4, 67, 4, 80),
                ],
            )
        ]
    )
    grid = BarGrid(start=0, bar_ticks=4 * TPQ, bars=2)
    continue_parts(output, seed, profile, [bass], grid, np.random.default_rng(0))
    played = output.tracks[-1].notes.numpy()
    first_bar = played["pitch"][played["time"] < grid.bar_ticks] % 12
    second_bar = played["pitch"][played["time"] >= grid.bar_ticks] % 12
    assert 5 in first_bar.tolist()  # F
    assert 0 in second_bar.tolist()  # C


def test_keyboard_notes_are_voiced_by_register_with_one_line_for_the_sax() -> None:
    profile = profile_seed(_band())
    voiced = [p for p in profile.pitched]
    output = _score(
        [
            _track(
                0, [(0, 38, 2, 80), (0, 74, 1, 80), (0, 77, 1, 80), (1, 76, 1, 80), (2, 40, 2, 80)]
            )
        ]
    )
    voice_by_register(output, voiced)
    by_program = {t.program: t.notes.numpy() for t in output.tracks}
    assert set(by_program) == {33, 65}
    assert sorted(by_program[33]["pitch"].tolist()) == [38, 40]
    sax = by_program[65]
    assert sax["time"].tolist() == [0, TPQ]  # one note per onset...
    assert sax["pitch"].tolist() == [77, 76]  # ...the top one


def test_a_steady_accompaniment_fills_only_the_bars_the_model_left_it_out_of() -> None:
    seed = _band()
    seed.tracks[2].notes = seed.tracks[2].notes.filter(lambda n: n.time < 4 * 480)
    profile = profile_seed(seed)  # the sax plays the first of the two bars only
    bass = next(p for p in profile.parts if p.program == 33)
    sax = next(p for p in profile.parts if p.program == 65)
    # The model wrote bass in bar 0 only and sax in bar 1 only, of four bars.
    output = _score([_track(33, [(0, 40, 4, 90)]), _track(65, [(4, 79, 4, 80)])])
    grid = BarGrid(0, 4 * TPQ, 4)
    continue_parts(
        output, seed, profile, (bass, sax), grid, np.random.default_rng(0), gaps_only=True
    )
    bar = 4 * TPQ
    bass_bars = sorted(
        {int(n.time // bar) for t in output.tracks if t.program == 33 for n in t.notes}
    )
    sax_bars = sorted(
        {int(n.time // bar) for t in output.tracks if t.program == 65 for n in t.notes}
    )
    assert bass_bars == [0, 1, 2, 3]  # the bass plays every seed bar: filled where silent
    new_bass = [n for t in output.tracks[2:] if t.program == 33 for n in t.notes]
    assert new_bass and min(n.time for n in new_bass) >= bar  # bar 0 kept the model's bass
    assert sax_bars == [1]  # the sax rests in half the seed: a melody may rest


def test_a_seed_s_instrument_stays_near_the_register_the_seed_gives_it() -> None:
    from engine.generation.arrange import REGISTER_SLACK, keep_in_register

    profile = profile_seed(_band())
    sax = next(p for p in profile.parts if p.program == 65)  # 72-77 in the seed
    # The model wrote the sax two octaves down, one note a little above, and left the bass be.
    output = _score(
        [_track(65, [(0, 48, 1, 80), (1, sax.high + 3, 1, 80)]), _track(33, [(0, 36, 1, 90)])]
    )
    keep_in_register(output, [sax], start=0)
    sax_pitches = [n.pitch for n in output.tracks[0].notes]
    assert sax_pitches == [72, sax.high + 3]  # moved by octaves; slack kept
    assert sax.low - REGISTER_SLACK <= min(sax_pitches)
    assert [n.pitch for n in output.tracks[1].notes] == [36]


def test_a_steady_part_the_model_left_silent_fills_the_rest_of_the_seed_s_last_bar() -> None:
    # The seed stops half way through its third bar; the continuation finishes that bar (the
    # lead, 2 beats) and then writes 2 whole bars. The model's bass starts only on the first
    # whole bar: without a fill the band would lose its bass for the rest of the seed's bar.
    seed = _band()
    seed.tracks[1].notes.append(Note(8 * 480, 2 * 480, 36, 90))  # bass in bar 3's first half
    seed.tracks[0].notes.append(Note(8 * 480, 240, 36, 100))
    profile = profile_seed(seed)
    bass = next(p for p in profile.parts if p.program == 33)
    grid = BarGrid(start=2 * TPQ, bar_ticks=4 * TPQ, bars=2, lead=2 * TPQ)
    output = _score([_track(33, [(2, 41, 4, 90), (6, 36, 4, 90)])])
    continue_parts(output, seed, profile, [bass], grid, np.random.default_rng(0), gaps_only=True)
    added = [n for t in output.tracks[1:] for n in t.notes]
    assert added, "the bass stayed silent in the rest of the seed's bar"
    assert all(grid.seam <= n.time < grid.start for n in added)  # only there: bars are whole
    # The seed's bar 2 (the loop's next) has the bass's G in its second half.
    assert {n.pitch for n in added} == {43}

    # Where the model's bass already plays in that half bar, nothing is added.
    output = _score([_track(33, [(0, 38, 2, 90), (2, 41, 4, 90), (6, 36, 4, 90)])])
    continue_parts(output, seed, profile, [bass], grid, np.random.default_rng(0), gaps_only=True)
    assert len(output.tracks) == 1


def test_a_gap_in_a_part_the_model_writes_keeps_the_seed_s_loop_order() -> None:
    # Filled gaps do not chase the harmony the model wrote: it is the model's own, and a
    # fill that follows it echoes its drift (the bass would take the seed's F bar under an F
    # chord, and the next gap's too). The loop goes on: bar 2 of the continuation is the seed's
    # bar 0 again, C and G.
    seed = _band()
    profile = profile_seed(seed)
    bass = next(p for p in profile.parts if p.program == 33)
    output = _score(
        [
            _track(33, [(0, 36, 4, 90), (4, 41, 4, 90), (12, 41, 4, 90)]),  # no bass in bar 2
            _track(0, [(8, 65, 4, 80), (8, 69, 4, 80), (8, 72, 4, 80)]),  # an F chord there
        ]
    )
    grid = BarGrid(0, 4 * TPQ, 4)
    continue_parts(output, seed, profile, [bass], grid, np.random.default_rng(0), gaps_only=True)
    filled = [n for t in output.tracks[2:] for n in t.notes]
    assert filled and {n.time // grid.bar_ticks for n in filled} == {2}
    assert {n.pitch % 12 for n in filled} == {0, 7}
