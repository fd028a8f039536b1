"""Form plans: which bars of a continuation come back from the seed or from earlier bars."""

from __future__ import annotations

import pytest

from engine.api.form import Reuse, phrase_bars, plan_form
from engine.generation.bars import split_bars


def test_by_default_the_seed_s_last_phrase_returns_twice_and_a_bar_answers_another() -> None:
    plan = plan_form("return", bars=16, seed_bars=8)
    assert plan[4] == Reuse(seed_bar=4) and plan[5] == Reuse(seed_bar=5, varied=True)
    assert plan[12] == Reuse(seed_bar=4) and plan[13] == Reuse(seed_bar=5, varied=True)
    assert plan[10] == Reuse(own_bar=8, varied=True)
    assert sum(r is not None for r in plan) == 5  # the rest is written freely


def test_without_a_seed_the_first_phrase_is_the_theme() -> None:
    plan = plan_form("return", bars=16, seed_bars=0)
    assert plan[12] == Reuse(own_bar=0) and plan[13] == Reuse(own_bar=1, varied=True)
    assert all(r is None or r.seed_bar is None for r in plan)


def test_aaba_repeats_its_a_phrase_with_a_varied_last_bar() -> None:
    plan = plan_form("AABA", bars=16, seed_bars=4)
    assert plan[:4] == [None] * 4 and plan[8:12] == [None] * 4  # A and B are new
    assert plan[4:8] == [
        Reuse(own_bar=0),
        Reuse(own_bar=1),
        Reuse(own_bar=2),
        Reuse(own_bar=3, varied=True),
    ]
    assert plan[12:16] == plan[4:8]


def test_free_plans_nothing_and_short_pieces_stay_free() -> None:
    assert plan_form("free", bars=16, seed_bars=4) == [None] * 16
    assert plan_form("return", bars=4, seed_bars=4) == [None] * 4


def test_long_metres_make_two_bar_phrases() -> None:
    assert phrase_bars(12, 8) == 2 and phrase_bars(7, 4) == 2
    assert phrase_bars(6, 8) == 4 and phrase_bars(4, 4) == 4


def test_an_unknown_form_names_the_choices() -> None:
    with pytest.raises(ValueError, match="form must be one of return, free, AABA, ABAB"):
        plan_form("rondo", bars=16, seed_bars=4)


def test_bars_split_where_an_id_opens_one() -> None:
    opens = [False, True, False, False, True]
    assert split_bars([0, 1, 2, 3, 4, 2], opens) == [[1, 2, 3], [4, 2]]
