"""A run's figures as lines an admin can read. The engine's metrics are a free-form dict:
known keys get sentences, other numbers are listed as they are, and a missing or non-numeric
value is left out rather than shown wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

# Where a run's metrics keep the gate's verdict in a sentence (written with the outcome).
GATE_REASON = "gate_reason"

# Keys shown by a sentence below, or that are not figures (the verdict and its reason are
# shown on their own).
_DESCRIBED = {
    "server_nll_before",
    "server_nll_after",
    "base_nll_reference",
    "base_nll_after",
    "base_tolerance",
    "base_nll_limit",
    "tuning_steps",
    "preference_pairs",
    "train_pieces",
    "heldout_pieces",
    "wall_seconds",
    "stage",
    "phase",
    "accepted",
    GATE_REASON,
}
# Discord allows 1024 characters per embed field; the lines stop well before.
MAX_CHARS = 1000


def number(metrics: Mapping[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _count(value: float | None, one: str, many: str) -> str | None:
    return None if value is None else plural(round(value), one, many)


def server_line(metrics: Mapping[str, Any]) -> str | None:
    before, after = number(metrics, "server_nll_before"), number(metrics, "server_nll_after")
    if after is None:
        return None
    if before is None or before <= 0:
        return f"This server's held-out pieces: {after:.3f} bits/token"
    change = after / before - 1
    return (
        f"This server's held-out pieces: {before:.3f} → {after:.3f} bits/token "
        f"({change:+.1%}; lower is better)"
    )


def base_line(metrics: Mapping[str, Any]) -> str | None:
    after, reference = number(metrics, "base_nll_after"), number(metrics, "base_nll_reference")
    if after is None:
        return None
    if reference is None or reference <= 0:
        return f"Music in general (base held-out pieces): {after:.3f} bits/token"
    tolerance = number(metrics, "base_tolerance")
    limit = number(metrics, "base_nll_limit")
    if limit is None and tolerance is not None:
        limit = reference * (1 + tolerance)
    line = (
        f"Music in general (base held-out pieces): {after:.3f} bits/token, "
        f"{after / reference - 1:+.1%} against the base model's {reference:.3f}"
    )
    if limit is not None:
        allowed = f"{tolerance:.0%}, " if tolerance is not None else ""
        line += f" (limit: {allowed}{limit:.3f})"
    return line


def training_line(metrics: Mapping[str, Any]) -> str | None:
    parts = [
        _count(number(metrics, "tuning_steps"), "tuning step", "tuning steps"),
        _count(number(metrics, "preference_pairs"), "preference pair", "preference pairs"),
        _count(number(metrics, "train_pieces"), "piece learned from", "pieces learned from"),
        _count(number(metrics, "heldout_pieces"), "held out", "held out"),
    ]
    if (seconds := number(metrics, "wall_seconds")) is not None:
        parts.append(f"{duration(seconds)} in all")
    shown = [p for p in parts if p]
    if metrics.get("stage") == "preferences":
        shown.append("judged after learning from the votes")
    return " · ".join(shown) or None


def other_lines(metrics: Mapping[str, Any]) -> list[str]:
    return [
        f"{key.replace('_', ' ')}: {value:g}"
        for key in sorted(metrics)
        if key not in _DESCRIBED and (value := number(metrics, key)) is not None
    ]


def figure_lines(metrics: Mapping[str, Any], *, details: bool = True) -> list[str]:
    """Every figure worth showing, within one embed field's length."""
    lines = [line for line in (server_line(metrics), base_line(metrics)) if line]
    if details:
        if training := training_line(metrics):
            lines.append(training)
        lines.extend(other_lines(metrics))
    kept: list[str] = []
    for line in lines:
        if sum(len(k) + 1 for k in kept) + len(line) > MAX_CHARS:
            break
        kept.append(line)
    return kept


def short_figures(metrics: Mapping[str, Any]) -> str | None:
    """ "4.120 → 3.710 bits/token": a version's result in a listing."""
    before, after = number(metrics, "server_nll_before"), number(metrics, "server_nll_after")
    if after is None:
        return None
    if before is None:
        return f"{after:.3f} bits/token"
    return f"{before:.3f} → {after:.3f} bits/token"
