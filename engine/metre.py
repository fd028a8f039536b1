"""Metres as the tokenizer names them ("6/8"), and how long their bars are (light: no torch)."""

from __future__ import annotations

# The time signatures the tokenizer's vocabulary holds, by denominator (MidiTok's format).
# The saved tokenizer JSON is the truth for a trained checkpoint; this is what `make train`
# gives it, and what the grammar lets a continuation choose when no metre is given.
TIME_SIGNATURES = {8: [3, 6, 9, 12], 4: [1, 2, 3, 4, 5, 6], 2: [2, 3, 4]}


def vocabulary_metres() -> list[str]:
    return [f"{n}/{d}" for d, numerators in TIME_SIGNATURES.items() for n in numerators]


def quarters_per_bar(metre: str) -> float:
    """Quarter notes in one bar of `metre`: "4/2" -> 8.0, "6/8" -> 3.0."""
    numerator, denominator = (int(x) for x in metre.split("/"))
    return numerator * 4 / denominator
