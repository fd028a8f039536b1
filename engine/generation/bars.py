"""Token ids cut into bars: how the form's plan (engine.api.form) finds the bars it reuses."""

from __future__ import annotations

from collections.abc import Sequence


def split_bars(ids: Sequence[int], opens_bar: Sequence[bool]) -> list[list[int]]:
    """Ids cut at every id that opens a bar (whatever comes before the first bar is dropped)."""
    bars: list[list[int]] = []
    for token in ids:
        if opens_bar[token]:
            bars.append([token])
        elif bars:
            bars[-1].append(token)
    return bars
