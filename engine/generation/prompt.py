"""From a seed (or none) to the prompt ids and the facts the continuation must keep."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from symusic import Score

from engine.api.errors import BadSeed
from engine.api.limits import DEFAULT_TEMPO_BPM, MAX_PROMPT_TOKENS
from engine.api.metre import bar_parts
from engine.api.seed_midi import SeedFacts, split_metres
from engine.generation.bars import split_bars
from engine.generation.grammar import NONE, Grammar, positions_per_bar
from engine.generation.seed_tokens import SeedTokens
from engine.model.tokenizer import MidiTokenizer


@dataclass
class Prompt:
    ids: list[int]  # what the model is prefilled with
    seed_ids: list[int]  # the whole seed, for output that includes it
    tempo: float  # bpm the continuation is written at
    time_signature: int  # grammar index of the metre to keep, or NONE
    seed_ticks: int  # where the continuation starts in the decoded seed+continuation
    seam: Seam | None = None  # set when the continuation goes on inside the seed's last bar
    # A seed metre the vocabulary lacks (7/4), written as a cycle of held ones (4/4, 3/4):
    # their grammar indices, which one the continuation's next bar states, how many bars of
    # them finish the seed's bar, and the seed's metre (the output states it again).
    metre_cycle: tuple[int, ...] = ()
    cycle_at: int = 0
    extra_bars: int = 0
    seed_metre: str | None = None

    @property
    def first_onset(self) -> tuple[int, int] | None:
        """Where the continuation's first onset may fall in the seed's last bar (grammar
        positions), or None: it starts on the next bar line."""
        return None if self.seam is None else self.seam.first_onset

    @property
    def first_bar_line(self) -> int:
        """Tick of the continuation's first whole bar in the decoded seed+continuation."""
        return self.seed_ticks + (0 if self.seam is None else self.seam.rest_ticks)


@dataclass(frozen=True)
class Seam:
    """A seed whose sound stops well before its last bar ends: the continuation goes on inside
    that bar (no near-empty bar before it), then writes the bars asked."""

    at: int  # ticks from the last bar line to where the continuation starts
    bar_ticks: int  # the last bar's length
    first_onset: tuple[int, int]  # grammar positions the first onset may take
    last_bar: list[int] = field(default_factory=list)  # the seed's last bar's ids

    @property
    def rest_ticks(self) -> int:
        return self.bar_ticks - self.at


def build_prompt(
    tokenizer: MidiTokenizer, grammar: Grammar, seed: Score | None, *, tempo: float | None = None
) -> Prompt:
    tokens = (
        None
        if seed is None
        else SeedTokens(tokenizer.encode(split_metres(seed)), SeedFacts.of(seed))
    )
    return prompt_from_seed(tokenizer, grammar, tokens, tempo=tempo)


def prompt_from_seed(
    tokenizer: MidiTokenizer,
    grammar: Grammar,
    seed: SeedTokens | None,
    *,
    tempo: float | None = None,
) -> Prompt:
    """The prompt of an already tokenized seed (engine.serving.seed_reader tokenizes them apart)."""
    if seed is None:
        return Prompt([tokenizer.bos_id], [], tempo or DEFAULT_TEMPO_BPM, NONE, 0)
    ids = seed.ids
    if not ids:
        raise BadSeed("the seed has no notes this model can read")
    prompt = [tokenizer.bos_id, *ids]
    if len(prompt) > MAX_PROMPT_TOKENS:
        # Keep the seed's last bars, starting on a bar line as training windows often do.
        tail = len(ids) - MAX_PROMPT_TOKENS
        starts = [i for i in range(tail, len(ids)) if grammar.opens_bar[ids[i]]]
        prompt = ids[starts[0] :] if starts else ids[tail:]
    ts = seed.facts.time_signature
    seam = find_seam(tokenizer, grammar, ids)
    bars_ticks = bars_length_ticks(tokenizer, ids)
    cycle, at, extra = metre_cycle(tokenizer, grammar, ids, ts)
    return Prompt(
        ids=prompt,
        seed_ids=ids,
        tempo=tempo or seed.facts.tempo or DEFAULT_TEMPO_BPM,
        time_signature=(cycle[at] if cycle else grammar.time_signature_index(ts) if ts else NONE),
        seed_ticks=bars_ticks - (0 if seam is None else seam.rest_ticks),
        seam=seam,
        metre_cycle=cycle,
        cycle_at=at,
        extra_bars=extra,
        seed_metre=ts if cycle else None,
    )


def metre_cycle(
    tokenizer: MidiTokenizer, grammar: Grammar, ids: list[int], metre: str | None
) -> tuple[tuple[int, ...], int, int]:
    """For a seed in a metre the vocabulary lacks (engine.api.seed_midi.split_metres wrote
    each of its bars as bars of held metres): the grammar indices of those metres, which one
    the continuation's next bar states, and how many of them finish the seed's last bar.
    ((), 0, 0) for a metre the vocabulary holds, or none."""
    usable = metre is not None and all(int(x) > 0 for x in metre.split("/"))
    parts = bar_parts(metre) if usable and metre is not None else None
    if not parts or len(parts) < 2:
        return (), 0, 0
    cycle = tuple(grammar.time_signature_index(p) for p in parts)
    if NONE in cycle:
        return (), 0, 0
    # Which part the seed's last bar is: counted from where its bars' metres (one per bar)
    # began to follow the cycle, from its first part (as split_metres writes them).
    stated = [t.partition("_")[2] for t in tokenizer.to_base(ids) if t.startswith("TimeSig_")]
    k = len(parts)
    begins = next(
        (s for s in range(len(stated)) if all(m == parts[i % k] for i, m in enumerate(stated[s:]))),
        len(stated),
    )
    last = (len(stated) - begins - 1) % k
    return cycle, (last + 1) % k, k - 1 - last


def find_seam(tokenizer: MidiTokenizer, grammar: Grammar, ids: list[int]) -> Seam | None:
    """Where a continuation goes on inside the seed's last bar, or None when it should start
    on the next bar line (the bar is full: its sound lasts to within a quarter note of the
    bar's end, or it is silent).

    The seed's sound is read from its last two bars (a note of the bar before may ring into
    the last); the seam is its end, rounded up to a sixteenth note so the continuation starts
    on the grid and a standalone clip can open with a whole number of sixteenths.
    """
    bars = split_bars(ids, grammar.opens_bar.tolist())
    if not bars:
        return None
    last = bars[-1]
    before = bars[-2] if len(bars) > 1 else []
    quarter = tokenizer.remi.time_division
    score = tokenizer.decode([*before, *last])
    sound = max(
        (int(n.time) + int(n.duration) for t in score.tracks for n in t.notes), default=0
    ) - bars_length_ticks(tokenizer, before)
    bar_ticks = bars_length_ticks(tokenizer, last)
    sixteenth = quarter // 4
    at = math.ceil(max(0, sound) / sixteenth) * sixteenth
    if at <= 0 or at > bar_ticks - quarter:
        return None
    metre = next(
        (t.partition("_")[2] for t in tokenizer.to_base(last) if t.startswith("TimeSig_")), "4/4"
    )
    positions = positions_per_bar(metre, max(tokenizer.remi.config.beat_res.values()))
    ticks_per_position = bar_ticks / positions
    first = math.ceil(at / ticks_per_position)
    latest = min(positions - 1, first + math.floor(quarter / ticks_per_position))
    return Seam(at, bar_ticks, (first, latest), list(last))


def bars_length_ticks(tokenizer: MidiTokenizer, ids: list[int]) -> int:
    """Ticks (at the tokenizer resolution) spanned by the bars of `ids`."""
    quarter = tokenizer.remi.time_division
    total, bar = 0, 0
    for token in tokenizer.to_base(ids):
        kind, _, value = token.partition("_")
        if kind == "Bar":
            total += bar
            bar = 4 * quarter  # 4/4 until a TimeSig says otherwise
        elif kind == "TimeSig":
            numerator, denominator = (int(x) for x in value.split("/"))
            bar = numerator * quarter * 4 // denominator
    return total + bar
