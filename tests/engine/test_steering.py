"""Steering tables and masks on the shipped tokenizer: each wish reaches the right ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.generation.steering import (
    DRUMS,
    GROOVE_CEILING,
    GROOVE_FLOOR,
    RowSteering,
    SteeringRows,
    SteeringTables,
    groove_bias,
    metric_prior,
)


@pytest.fixture(scope="module")
def tables(base_checkpoint) -> SteeringTables:
    return SteeringTables.build(base_checkpoint.tokenizer)


@pytest.fixture(scope="module")
def tokenizer(base_checkpoint):
    return base_checkpoint.tokenizer


def _id(tokenizer, token: str) -> int:
    return (
        tokenizer.remi.vocab[token]
        if token in tokenizer.remi.vocab
        else next(i for i in range(tokenizer.vocab_size) if tokenizer.base_tokens(i) == [token])
    )


def _rows(tables, steering: RowSteering, n: int = 1) -> SteeringRows:
    return SteeringRows.of(tables, steering, n, "cpu")


def test_only_the_allowed_programs_pass(tables, tokenizer) -> None:
    rows = _rows(tables, RowSteering(programs=frozenset({73, 33})))
    mask = rows.mask(tables)[0]
    assert mask[_id(tokenizer, "Program_73")] and mask[_id(tokenizer, "Program_33")]
    assert not mask[_id(tokenizer, "Program_0")]
    assert not mask[_id(tokenizer, "Program_-1")]  # drums are a program like any other
    # Every id that names another program is out, every id naming none stays in.
    names = tables.programs.sum(1) > 0
    allowed = tables.programs[:, [73, 33]].sum(1) == tables.programs.sum(1)
    assert torch.equal(mask, ~names | allowed)


def test_velocities_outside_the_seeds_range_are_out(tables, tokenizer) -> None:
    rows = _rows(tables, RowSteering(velocities=(60, 90)))
    mask = rows.mask(tables)[0]
    assert mask[_id(tokenizer, "Velocity_63")] and mask[_id(tokenizer, "Velocity_87")]
    assert not mask[_id(tokenizer, "Velocity_127")] and not mask[_id(tokenizer, "Velocity_31")]


def test_a_range_between_two_levels_keeps_the_nearest(tables) -> None:
    rows = _rows(tables, RowSteering(velocities=(88, 90)))
    assert int(rows.allowed_velocities[0].sum()) == 1


def test_a_monophonic_row_stacks_no_chord(tables, tokenizer) -> None:
    rows = _rows(tables, RowSteering(monophonic=True), 2)
    rows.after_note[0] = True  # row 0 just finished a note at this position
    mask = rows.mask(tables)
    program = _id(tokenizer, "Program_0")
    assert not mask[0, program] and mask[1, program]
    chord_ids = torch.nonzero(tables.stacks).flatten()
    assert len(chord_ids) > 0 and not mask[:, chord_ids].any()


def test_out_of_scale_pitches_cost_and_in_scale_ones_do_not(tables, tokenizer) -> None:
    c_major = frozenset({0, 2, 4, 5, 7, 9, 11})
    rows = _rows(tables, RowSteering(scale=c_major, key_strength=2.0))
    bias = rows.bias(tables)[0]
    assert bias[_id(tokenizer, "Pitch_60")] == 0.0
    assert bias[_id(tokenizer, "Pitch_61")] == pytest.approx(-2.0)


def test_notes_beyond_the_seeds_density_cost(tables, tokenizer) -> None:
    rows = _rows(tables, RowSteering(notes_per_bar=2.0), 2)
    rows.notes_in_bar[0] = 6.0  # well past 2 x slack
    bias = rows.bias(tables)
    program = _id(tokenizer, "Program_0")
    bar = next(i for i in range(tokenizer.vocab_size) if tokenizer.base_tokens(i) == ["Bar_None"])
    assert bias[0, program] < 0 and bias[1, program] == 0
    assert bias[0, bar] == 0  # closing the bar is always free


def test_advance_counts_notes_per_bar(tables, tokenizer) -> None:
    rows = _rows(tables, RowSteering(notes_per_bar=4.0))
    rows.advance(tables, torch.tensor([_id(tokenizer, "Program_0")]))
    rows.advance(tables, torch.tensor([_id(tokenizer, "Program_0")]))
    assert rows.notes_in_bar.item() == 2.0
    bar = next(i for i in range(tokenizer.vocab_size) if tokenizer.base_tokens(i) == ["Bar_None"])
    rows.advance(tables, torch.tensor([bar]))
    assert rows.notes_in_bar.item() == 0.0


def test_the_groove_favours_the_seeds_positions() -> None:
    onsets = np.zeros(72)
    onsets[[0, 24, 36, 60]] = 0.25  # a jig in 6/8
    bias = groove_bias(onsets, 12)
    assert bias[0] == pytest.approx(GROOVE_CEILING) or bias[0] > 0
    assert bias[6] < 0 and bias[6] >= GROOVE_FLOOR  # a sixteenth the jig never plays
    assert bias[24] > bias[12]
    assert metric_prior(48, 12).sum() == pytest.approx(1.0)


def test_drums_are_a_column_of_their_own(tables, tokenizer) -> None:
    assert tables.programs[_id(tokenizer, "Program_-1"), DRUMS] == 1.0


def test_pitch_feedback_draws_back_a_part_that_drifts_from_the_seed_s(tables, tokenizer) -> None:
    from engine.generation.steering import PITCH_FEEDBACK_CAP

    c_major = frozenset({0, 2, 4, 5, 7, 9, 11})
    bass = (0.4, 0, 0.1, 0, 0.3, 0.1, 0, 0.1, 0, 0, 0, 0)  # a bass that dwells on C and E
    steering = RowSteering(scale=c_major, key_strength=2.0, part_pitch_shares=((33, bass),))
    rows = _rows(tables, steering, 3)
    c, e, a = (_id(tokenizer, f"Pitch_{p}") for p in (36, 40, 45))
    bass_program, piano = _id(tokenizer, "Program_33"), _id(tokenizer, "Program_0")
    before = rows.bias(tables)
    # Row 0's bass has played only As (a pedal on the sixth); row 1's the seed's mix, on C
    # and E; row 2 only its piano, which has no target.
    rows.advance(tables, torch.tensor([bass_program, bass_program, piano]))
    for i in range(20):
        rows.advance(tables, torch.tensor([a, c if i % 2 else e, a]))
    after = rows.bias(tables) - before
    assert after[0, c] > 0.5 and after[0, e] > 0.5  # the seed's bass notes gain...
    assert after[0, a] < -0.5  # ...the pedal loses
    most_notes = tables.pitch_classes.sum(1).max()  # a BPE id may hold a few notes
    assert after[0].abs().max() <= PITCH_FEEDBACK_CAP * most_notes + 1e-5  # bounded
    d = _id(tokenizer, "Pitch_38")
    assert after[1, d] > 0.5  # row 1 has no D yet, the seed's bass has 10%
    assert abs(float(after[1, c])) < 0.5  # C: half its notes against 40% in the seed
    assert after[2].abs().max() == 0  # the piano has no target: nothing to correct
    # The feedback follows the program: once row 0 turns to the piano, its As are free again.
    rows.advance(tables, torch.tensor([piano, piano, piano]))
    assert rows.bias(tables)[0, a] == before[0, a]


def test_no_pitch_feedback_without_a_key_to_follow(tables, tokenizer) -> None:
    shares = (0.4, 0, 0.1, 0, 0.3, 0.1, 0, 0.1, 0, 0, 0, 0)
    # follow_key off: no scale, no key strength
    rows = _rows(tables, RowSteering(part_pitch_shares=((0, shares),)))
    program, a = _id(tokenizer, "Program_0"), _id(tokenizer, "Pitch_69")
    rows.advance(tables, torch.tensor([program]))
    for _ in range(20):
        rows.advance(tables, torch.tensor([a]))
    assert rows.bias(tables).abs().max() == 0
