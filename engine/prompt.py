"""From a seed (or none) to the prompt ids and the facts the continuation must keep."""

from __future__ import annotations

from dataclasses import dataclass

from symusic import Score

from engine.errors import BadSeed
from engine.grammar import NONE, Grammar
from engine.limits import DEFAULT_TEMPO_BPM, MAX_PROMPT_TOKENS
from engine.seed import SeedFacts
from engine.seed_reader import SeedTokens
from engine.tokenizer import MidiTokenizer


@dataclass
class Prompt:
    ids: list[int]  # what the model is prefilled with
    seed_ids: list[int]  # the whole seed, for output that includes it
    tempo: float  # bpm the continuation is written at
    time_signature: int  # grammar index of the metre to keep, or NONE
    seed_ticks: int  # where the continuation starts in the decoded seed+continuation


def build_prompt(tokenizer: MidiTokenizer, grammar: Grammar, seed: Score | None,
                 *, tempo: float | None = None) -> Prompt:
    tokens = None if seed is None else SeedTokens(tokenizer.encode(seed), SeedFacts.of(seed))
    return prompt_from_seed(tokenizer, grammar, tokens, tempo=tempo)


def prompt_from_seed(tokenizer: MidiTokenizer, grammar: Grammar, seed: SeedTokens | None,
                     *, tempo: float | None = None) -> Prompt:
    """The prompt of an already tokenized seed (engine.seed_reader tokenizes them apart)."""
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
        prompt = ids[starts[0]:] if starts else ids[tail:]
    ts = seed.facts.time_signature
    return Prompt(
        ids=prompt,
        seed_ids=ids,
        tempo=tempo or seed.facts.tempo or DEFAULT_TEMPO_BPM,
        time_signature=grammar.time_signature_index(ts) if ts else NONE,
        seed_ticks=bars_length_ticks(tokenizer, ids),
    )


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
