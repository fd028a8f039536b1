"""Repetition and form: which bars of a continuation come back from earlier material.

Music repeats: a phrase returns, a motif of the seed comes back varied. A free LSTM almost
never does (0.1% of its bars repeat an earlier one, against 14% in real continuations), so a
`Form` plans, bar by bar, where the sampler should reuse material instead of inventing it:

- `free`: nothing planned;
- `return` (the default): new phrases, with the seed's material coming back at the start of
  the second phrase and in the last one, as a tune returns to its theme;
- `AABA`, `ABAB`: phrases of four bars (two in long metres) repeated in that order, each repeat
  with a varied last bar.

A planned bar names where its material comes from (a bar of the seed, or a bar generated
earlier in the same row) and whether it is `varied`: only its first half is copied, the model
writes the rest. The sampler feeds the copied ids through the model like its own
(engine.generation.sample), so what follows a return is written knowing it.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMS = ("return", "free", "AABA", "ABAB")
DEFAULT_FORM = "return"
PHRASE_BARS = 4
LONG_BAR_BEATS = 6  # metres this long (in quarter notes) make two-bar phrases (12/8, 7/4...)


@dataclass(frozen=True)
class Reuse:
    """Bar material to copy: a bar of the seed (`seed_bar`, an index into the seed's bars in
    its final metre) or a bar written earlier in this continuation (`own_bar`)."""

    seed_bar: int | None = None
    own_bar: int | None = None
    varied: bool = False  # copy the first half only


def phrase_bars(numerator: int, denominator: int) -> int:
    beats = numerator * 4 / denominator
    return 2 if beats >= LONG_BAR_BEATS else PHRASE_BARS


def plan_form(
    form: str, *, bars: int, seed_bars: int, phrase: int = PHRASE_BARS
) -> list[Reuse | None]:
    """For each bar of the continuation (0-based), what to reuse, or None to write freely."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)} (received {form!r})")
    plan: list[Reuse | None] = [None] * bars
    if form == "free" or bars < 2:
        return plan
    if form == "return":
        return _returning(plan, bars, seed_bars, phrase)
    letters = form  # e.g. "AABA": phrase i repeats the first phrase with the same letter
    first: dict[str, int] = {}
    for index in range(bars // phrase):
        letter = letters[index % len(letters)]
        if letter not in first:
            first[letter] = index
            continue
        source = first[letter] * phrase
        for k in range(phrase):
            bar = index * phrase + k
            plan[bar] = Reuse(own_bar=source + k, varied=k == phrase - 1)
    return plan


def _returning(
    plan: list[Reuse | None], bars: int, seed_bars: int, phrase: int
) -> list[Reuse | None]:
    """The seed's last phrase comes back, varied from its second bar, at the second phrase
    and again in the last phrase; within the third phrase, its first bar returns at its
    third (a call and answer). Without a seed, the first phrase is the theme that returns."""
    phrases = bars // phrase
    theme = max(0, seed_bars - phrase)  # the first bar of the seed's last phrase
    if seed_bars and phrases >= 2:
        plan[phrase] = Reuse(seed_bar=theme)
        plan[phrase + 1] = Reuse(seed_bar=min(theme + 1, seed_bars - 1), varied=True)
    if phrases >= 3:
        last = (phrases - 1) * phrase
        if seed_bars:
            plan[last] = Reuse(seed_bar=theme)
            plan[last + 1] = Reuse(seed_bar=min(theme + 1, seed_bars - 1), varied=True)
        else:
            plan[last] = Reuse(own_bar=0)
            plan[last + 1] = Reuse(own_bar=1, varied=True)
    if phrases >= 3 and phrase >= 3:
        start = 2 * phrase if phrases > 3 else phrase
        if plan[start + 2] is None:
            plan[start + 2] = Reuse(own_bar=start, varied=True)
    return plan
