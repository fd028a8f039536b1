"""Metres as the tokenizer names them ("6/8"), and how long their bars are (light: no torch)."""

from __future__ import annotations

# The time signatures the tokenizer's vocabulary holds, by denominator (MidiTok's format).
# The saved tokenizer JSON is the truth for a trained checkpoint; this is what `make train`
# gives it, and what the grammar lets a continuation choose when no metre is given.
TIME_SIGNATURES = {8: [3, 6, 9, 12], 4: [1, 2, 3, 4, 5, 6], 2: [2, 3, 4]}


# At most this many bars of held metres stand for one bar of a metre the vocabulary lacks
# (the sampler keeps each row's cycle of metres in a fixed-width tensor).
MAX_METRE_PARTS = 4


def vocabulary_metres() -> list[str]:
    return [f"{n}/{d}" for d, numerators in TIME_SIGNATURES.items() for n in numerators]


def quarters_per_bar(metre: str) -> float:
    """Quarter notes in one bar of `metre`: "4/2" -> 8.0, "6/8" -> 3.0."""
    numerator, denominator = (int(x) for x in metre.split("/"))
    return numerator * 4 / denominator


def bar_parts(metre: str) -> list[str] | None:
    """The bars of metres the vocabulary holds that one bar of `metre` is written as: itself
    when the vocabulary holds it; else the fewest, as even as possible, longest first
    ("8/4" -> 4/4 4/4, "7/4" -> 4/4 3/4, "5/8" -> 3/8 1/4); None when no such bars add up to
    it (a bar of 7/16) in at most MAX_METRE_PARTS bars."""
    held = vocabulary_metres()
    if metre in held:
        return [metre]
    numerator, denominator = (int(x) for x in metre.split("/"))
    eighths = numerator * 8 / denominator
    if numerator <= 0 or eighths != int(eighths):
        return None
    sizes = {m: int(quarters_per_bar(m) * 2) for m in held}  # in eighths
    same = [m for m in held if m.endswith(f"/{denominator}")]
    best: list[str] | None = None
    for count in range(2, MAX_METRE_PARTS + 1):
        options = _splits(int(eighths), count, sizes)
        if options:
            # Bars of the seed's own denominator first, then the most even split, then beats
            # nearest the seed's (quarters before halves in 11/8).
            best = min(
                options,
                key=lambda parts: (
                    -sum(p in same for p in parts),
                    max(sizes[p] for p in parts) - min(sizes[p] for p in parts),
                    sum(abs(int(p.split("/")[1]) - denominator) for p in parts),
                ),
            )
            break
    if best is None:
        return None
    return sorted(best, key=lambda p: -sizes[p])


def _splits(total: int, count: int, sizes: dict[str, int]) -> list[list[str]]:
    """Every multiset of `count` metres whose bars add up to `total` eighths."""
    metres = sorted(sizes)
    out: list[list[str]] = []

    def walk(start: int, left: int, chosen: list[str]) -> None:
        if len(chosen) == count:
            if left == 0:
                out.append(list(chosen))
            return
        for i in range(start, len(metres)):
            if sizes[metres[i]] <= left:
                walk(i, left - sizes[metres[i]], [*chosen, metres[i]])

    walk(0, total, [])
    return out
