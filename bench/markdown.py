"""Markdown tables and number formatting shared by the sections."""

from __future__ import annotations

from collections.abc import Sequence


def table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A pipe table; `align` has one letter per column, l or r (default: l, then r)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = [header, rule, *([str(c) for c in row] for row in rows)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def code(command: str) -> str:
    return f"```\n{command}\n```"


def percent(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f}%"


def seconds(x: float) -> str:
    return f"{x:.3f} s" if x < 0.1 else f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def ratio(x: float) -> str:
    return f"{x:.2f}x"
