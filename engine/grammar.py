"""Which token may come next: REMI's grammar lifted to learned (BPE) tokens, as tensors.

Every id is described once by what it contains (its first and last REMI type, the positions
it sets, whether it opens a bar, its tempo, metre and program). A sampling step then builds
the mask of allowed ids for a whole batch with a few tensor ops, so every generated sequence
decodes to valid MIDI without a Python loop over the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.tokenizer import MidiTokenizer

TYPES = ["BOS", "EOS", "PAD", "Bar", "TimeSig", "Position", "Tempo", "Program", "ProgramDrum",
         "Pitch", "PitchDrum", "Velocity", "Duration"]
T = {name: i for i, name in enumerate(TYPES)}

# What may follow what in one REMI stream with programs (MidiTok's own graph, minus PAD, with
# EOS only after a finished note and BOS only opening a bar).
FOLLOWS = {
    "BOS": {"Bar"},
    "Bar": {"TimeSig"},
    "TimeSig": {"Position", "Bar"},
    "Position": {"Tempo", "Program", "ProgramDrum"},
    "Tempo": {"Program", "ProgramDrum", "Position", "Bar"},
    "Program": {"Pitch"},
    "ProgramDrum": {"PitchDrum"},  # Program_-1: drums take drum pitches only
    "Pitch": {"Velocity"},
    "PitchDrum": {"Velocity"},
    "Velocity": {"Duration"},
    "Duration": {"Program", "ProgramDrum", "Position", "Bar", "EOS"},
    "EOS": set(),
    "PAD": set(),
}
NONE = -1  # "this token has no such thing"
NO_LIMIT = 1 << 20  # bar length before any time signature is known
# Learned ids in one bar before the bar must close: the densest corpus bars use ~40, and a
# model stuck repeating chords at one position would otherwise never reach its bar count.
BAR_TOKEN_CAP = 64
# Types that begin a new event in a bar (as opposed to finishing the note under way).
_EVENT_STARTS = ("Position", "Tempo", "Program", "ProgramDrum")
MIXED = -2  # "this token has several programs"
DRUMS = 128  # the drum "program" (REMI's Program_-1, which must not read as NONE)


def _type_and_value(token: str) -> tuple[str, str]:
    kind, _, value = token.partition("_")
    if kind == "Program" and value == "-1":
        kind = "ProgramDrum"
    return kind, value


def positions_per_bar(time_signature: str, positions_per_beat: int) -> int:
    """REMI counts positions at the finest beat resolution, per beat of the metre."""
    return int(time_signature.split("/")[0]) * positions_per_beat


@dataclass
class Grammar:
    """Per-id facts (V,) and the type transition table (types, types)."""

    follows: torch.Tensor  # (K, K) bool: type a may be followed by type b
    first_type: torch.Tensor  # (V,) long
    last_type: torch.Tensor  # (V,) long
    internally_valid: torch.Tensor  # (V,) bool
    opens_bar: torch.Tensor  # (V,) bool
    first_position: torch.Tensor  # (V,) long, NONE when the id sets no position
    last_position: torch.Tensor  # (V,) long
    has_tempo: torch.Tensor  # (V,) bool
    time_signature: torch.Tensor  # (V,) long index into time_signatures, or NONE
    program: torch.Tensor  # (V,) long: the program of its notes, NONE or MIXED
    starts_event: torch.Tensor  # (V,) bool: begins a position, tempo or note
    bar_positions: torch.Tensor  # (S,) positions in a bar of each time signature
    time_signatures: list[str]

    @classmethod
    def build(cls, tokenizer: MidiTokenizer) -> Grammar:
        follows = torch.zeros(len(TYPES), len(TYPES), dtype=torch.bool)
        for a, nexts in FOLLOWS.items():
            for b in nexts:
                follows[T[a], T[b]] = True
        size = tokenizer.vocab_size
        cols = {name: torch.full((size,), NONE, dtype=torch.long) for name in (
            "first_type", "last_type", "first_position", "last_position", "time_signature",
            "program")}
        flags = {name: torch.zeros(size, dtype=torch.bool) for name in (
            "internally_valid", "opens_bar", "has_tempo")}
        time_signatures: list[str] = []
        per_beat = max(tokenizer.remi.config.beat_res.values())
        for token_id in range(size):
            # A learned id can stand for no REMI token at all (BPE's lone word marker).
            base = tokenizer.base_tokens(token_id) or ["PAD_None"]
            kinds = [_type_and_value(t) for t in base]
            types = [T[k] for k, _ in kinds]
            cols["first_type"][token_id] = types[0]
            cols["last_type"][token_id] = types[-1]
            valid = all(follows[a, b] for a, b in zip(types, types[1:], strict=False))
            position, programs, limit = NONE, set(), None
            for kind, value in kinds:
                if kind == "Bar":
                    position, limit = NONE, None
                elif kind == "Position":
                    pos = int(value)
                    valid = valid and pos > position and (limit is None or pos < limit)
                    position = pos
                    if cols["first_position"][token_id] == NONE:
                        cols["first_position"][token_id] = pos
                elif kind == "TimeSig":
                    limit = positions_per_bar(value, per_beat)
                    if value not in time_signatures:
                        time_signatures.append(value)
                    cols["time_signature"][token_id] = time_signatures.index(value)
                elif kind in ("Program", "ProgramDrum"):
                    programs.add(DRUMS if kind == "ProgramDrum" else int(value))
            cols["last_position"][token_id] = position
            if programs:
                cols["program"][token_id] = programs.pop() if len(programs) == 1 else MIXED
            flags["internally_valid"][token_id] = valid and kinds[0][0] not in ("PAD", "BOS")
            flags["opens_bar"][token_id] = kinds[0][0] == "Bar"
            flags["has_tempo"][token_id] = any(k == "Tempo" for k, _ in kinds)
        starts_event = torch.zeros(size, dtype=torch.bool)
        for kind in _EVENT_STARTS:
            starts_event |= cols["first_type"] == T[kind]
        bar_positions = torch.tensor([positions_per_bar(ts, per_beat) for ts in time_signatures])
        return cls(follows=follows, time_signatures=time_signatures,
                   bar_positions=bar_positions, starts_event=starts_event, **cols, **flags)

    def to(self, device: torch.device | str) -> Grammar:
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                 for k, v in vars(self).items()}
        return Grammar(**moved)

    def time_signature_index(self, value: str) -> int:
        return self.time_signatures.index(value) if value in self.time_signatures else NONE


@dataclass
class GrammarState:
    """Where each sequence of a batch stands: (B,) tensors."""

    last_type: torch.Tensor
    position: torch.Tensor  # last position set in the current bar, NONE right after a Bar
    limit: torch.Tensor  # positions in the current bar (from its time signature)
    bars: torch.Tensor  # bars opened since generation began
    bar_tokens: torch.Tensor  # ids since the current bar opened

    FIELDS = ("last_type", "position", "limit", "bars", "bar_tokens")

    @classmethod
    def after(cls, grammar: Grammar, prompts: list[list[int]], device) -> GrammarState:
        """The state at the end of each prompt."""
        last_type, position, limit = [], [], []
        for ids in prompts:
            kind, pos, lim = T["BOS"], NONE, NO_LIMIT
            for i in ids:
                kind = int(grammar.last_type[i])
                lp = int(grammar.last_position[i])
                pos = lp if lp != NONE else (NONE if grammar.opens_bar[i] else pos)
                ts = int(grammar.time_signature[i])
                lim = int(grammar.bar_positions[ts]) if ts != NONE else lim
            last_type.append(kind)
            position.append(pos)
            limit.append(lim)
        as_long = lambda xs: torch.tensor(xs, dtype=torch.long, device=device)  # noqa: E731
        zeros = as_long([0] * len(prompts))
        return cls(as_long(last_type), as_long(position), as_long(limit), zeros, zeros.clone())

    def allowed(self, grammar: Grammar, *, want_time_signature: torch.Tensor,
                keep_tempo: torch.Tensor, want_program: torch.Tensor,
                must_open_bar: torch.Tensor) -> torch.Tensor:
        """(B, V) bool mask of the ids each sequence may take next."""
        ok = grammar.follows[self.last_type][:, grammar.first_type]  # (B, V)
        ok &= grammar.internally_valid
        first_pos = grammar.first_position
        # A position may only move forward within a bar (a Bar resets it).
        ok &= (first_pos == NONE) | grammar.opens_bar | (first_pos > self.position[:, None])
        # ... and stay inside the bar its time signature measures.
        ok &= (grammar.last_position == NONE) | grammar.opens_bar | (
            grammar.last_position < self.limit[:, None])
        ok &= ~(grammar.has_tempo & keep_tempo[:, None])
        ts = grammar.time_signature
        ok &= (ts == NONE) | (want_time_signature[:, None] == NONE) | (
            ts == want_time_signature[:, None])
        prog = grammar.program
        ok &= (prog == NONE) | (want_program[:, None] == NONE) | (prog == want_program[:, None])
        ok &= grammar.opens_bar | ~must_open_bar[:, None]
        # A crowded bar may finish its note under way, then only close.
        crowded = self.bar_tokens >= BAR_TOKEN_CAP
        ok &= ~(crowded[:, None] & grammar.starts_event)
        ok[:, grammar.first_type == T["EOS"]] = False  # length is ours to decide, in bars
        return ok

    def advance(self, grammar: Grammar, ids: torch.Tensor) -> None:
        """Move every sequence past its sampled id (B,)."""
        opens = grammar.opens_bar[ids]
        last_pos = grammar.last_position[ids]
        self.position = torch.where(
            last_pos != NONE, last_pos, torch.where(opens, torch.full_like(last_pos, NONE),
                                                    self.position))
        ts = grammar.time_signature[ids]
        self.limit = torch.where(ts != NONE, grammar.bar_positions[ts.clamp(min=0)], self.limit)
        self.bars = self.bars + opens.long()
        self.bar_tokens = torch.where(opens, torch.ones_like(self.bar_tokens), self.bar_tokens + 1)
        self.last_type = grammar.last_type[ids]
