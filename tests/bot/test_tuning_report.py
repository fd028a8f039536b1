"""The figures of a run as an admin reads them: whatever the engine sends, nothing crashes
and nothing wrong is shown."""

from __future__ import annotations

import math

import pytest

from bot.ui.tuning_figures import MAX_CHARS, figure_lines, short_figures

FULL = {
    "server_nll_before": 3.9123,
    "server_nll_after": 3.4012,
    "base_nll_reference": 3.55,
    "base_nll_after": 3.58,
    "base_tolerance": 0.05,
    "base_nll_limit": 3.7275,
    "tuning_steps": 8,
    "preference_pairs": 1,
    "train_pieces": 7,
    "heldout_pieces": 1,
    "wall_seconds": 125.4,
    "stage": "preferences",
    "best_step": 8,
    "accepted": True,
    "gate_reason": "better",
    "phase": "gate",
    "preferences_skipped": "text is not a figure",
}


def test_every_known_figure_gets_its_sentence_and_the_rest_are_listed() -> None:
    lines = figure_lines(FULL)
    assert lines[0] == (
        "This server's held-out pieces: 3.912 → 3.401 bits/token (-13.1%; lower is better)"
    )
    assert lines[1] == (
        "Music in general (base held-out pieces): 3.580 bits/token, +0.8% against the base "
        "model's 3.550 (limit: 5%, 3.728)"
    )
    assert lines[2] == (
        "8 tuning steps · 1 preference pair · 7 pieces learned from · 1 held out · "
        "2 min 5 s in all · judged after learning from the votes"
    )
    assert lines[3:] == ["best step: 8"]  # not the verdict, the phase or any text
    assert short_figures(FULL) == "3.912 → 3.401 bits/token"


@pytest.mark.parametrize(
    "metrics",
    [
        {},
        {"server_nll_after": 3.4},
        {"server_nll_before": None, "server_nll_after": "3.4", "base_nll_after": math.nan},
        {"base_nll_after": 3.6, "base_nll_reference": 0.0, "tuning_steps": True},
        {"base_nll_after": 3.6, "base_nll_reference": 3.5},
        {f"figure_{i}": float(i) for i in range(500)},
    ],
    ids=["empty", "after-only", "wrong-types", "zero-reference", "no-limit", "many"],
)
def test_missing_or_odd_figures_never_break_the_message(metrics) -> None:
    lines = figure_lines(metrics)
    assert sum(len(line) + 1 for line in lines) <= MAX_CHARS + 1
    text = "\n".join(lines)
    assert "nan" not in text and "None" not in text and "True" not in text
    short_figures(metrics)
