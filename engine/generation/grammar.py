"""Which token may come next: REMI's grammar lifted to learned (BPE) tokens, as tensors.

Every id is described once by what it contains (its first and last REMI type, the positions
it sets, whether it opens a bar, its tempo, metre and program). A sampling step then builds
the mask of allowed ids for a whole batch with a few tensor ops, so every generated sequence
decodes to valid MIDI without a Python loop over the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.api.metre import MAX_METRE_PARTS
from engine.generation.steering import SteeringTables
from engine.model.tokenizer import MidiTokenizer

TYPES = [
    "BOS",
    "EOS",
    "PAD",
    "Bar",
    "TimeSig",
    "Position",
    "Tempo",
    "Program",
    "ProgramDrum",
    "Pitch",
    "PitchDrum",
    "Velocity",
    "Duration",
]
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
# Where a row stands against the cap (rows of Grammar.crowd_allows): room left; crowded
# between notes; crowded right after a Position or Tempo, with the note still to write.
ROOMY, CROWDED, CROWDED_MID_EVENT = 0, 1, 2
MIXED = -2  # "this token has several programs"
DRUMS = 128  # the drum "program" (REMI's Program_-1, which must not read as NONE)


def _type_and_value(token: str) -> tuple[str, str]:
    kind, _, value = token.partition("_")
    if kind == "Program" and value == "-1":
        kind = "ProgramDrum"
    return kind, value


def _crowd_allows(
    tokenizer: MidiTokenizer, first_type: torch.Tensor, opens_bar: torch.Tensor
) -> torch.Tensor:
    """(3, V): which ids a row may take at each crowd level (ROOMY, CROWDED, ...).

    A crowded bar must close in a few ids whatever the model wants, so it takes no new event:
    only ids with no Position, Tempo or Program in them, which finish the note under way
    (Pitch, Velocity, Duration), or ids that open the next bar. Right after a Position (or its
    Tempo) REMI wants a note, so there an id may also start with the note's Program, as long
    as nothing else in it starts an event. Then Duration -> Bar ends the bar within 5 ids.
    BPE ids are judged by every REMI token they merge, not by their first one alone: an id
    starting with a Velocity may carry a later Position.
    """
    size = len(first_type)
    starts = torch.tensor(
        [
            sum(_type_and_value(t)[0] in _EVENT_STARTS for t in tokenizer.base_tokens(i))
            for i in range(size)
        ]
    )
    quiet = starts == 0
    note = (first_type == T["Program"]) | (first_type == T["ProgramDrum"])
    allows = torch.ones(3, size, dtype=torch.bool)
    allows[CROWDED] = opens_bar | quiet
    allows[CROWDED_MID_EVENT] = opens_bar | quiet | (note & (starts == 1))
    return allows


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
    crowd_allows: torch.Tensor  # (3, V) bool: ids allowed at ROOMY, CROWDED, CROWDED_MID_EVENT
    bar_positions: torch.Tensor  # (S,) positions in a bar of each time signature
    time_signatures: list[str]
    # Which valid ids fit a seed (instruments, key, dynamics...): engine.generation.steering.
    steering: SteeringTables | None = None

    @classmethod
    def build(cls, tokenizer: MidiTokenizer) -> Grammar:
        follows = torch.zeros(len(TYPES), len(TYPES), dtype=torch.bool)
        for a, nexts in FOLLOWS.items():
            for b in nexts:
                follows[T[a], T[b]] = True
        size = tokenizer.vocab_size
        cols = {
            name: torch.full((size,), NONE, dtype=torch.long)
            for name in (
                "first_type",
                "last_type",
                "first_position",
                "last_position",
                "time_signature",
                "program",
            )
        }
        flags = {
            name: torch.zeros(size, dtype=torch.bool)
            for name in ("internally_valid", "opens_bar", "has_tempo")
        }
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
        bar_positions = torch.tensor([positions_per_bar(ts, per_beat) for ts in time_signatures])
        crowd_allows = _crowd_allows(tokenizer, cols["first_type"], flags["opens_bar"])
        return cls(
            follows=follows,
            time_signatures=time_signatures,
            bar_positions=bar_positions,
            crowd_allows=crowd_allows,
            steering=SteeringTables.build(tokenizer),
            **cols,
            **flags,
        )

    def to(self, device: torch.device | str) -> Grammar:
        moved = {
            k: (v.to(device) if isinstance(v, torch.Tensor | SteeringTables) else v)
            for k, v in vars(self).items()
        }
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
    time_signature: torch.Tensor  # metre every new bar states; NONE: the first one chosen
    open_bar: torch.Tensor  # bool: the next id must open a bar
    # A continuation that goes on inside the seed's last bar must start with a Position no
    # later than this (so no hole opens at the seam); NONE once it has, or when it need not.
    first_by: torch.Tensor
    # A metre the vocabulary lacks is written as a cycle of metres it holds (7/4: 4/4, 3/4):
    # (B, MAX_METRE_PARTS) grammar indices, how many are used (0: no cycle), and which one
    # the next bar states.
    cycle: torch.Tensor
    cycle_len: torch.Tensor
    cycle_at: torch.Tensor

    FIELDS = (
        "last_type",
        "position",
        "limit",
        "bars",
        "bar_tokens",
        "time_signature",
        "open_bar",
        "first_by",
        "cycle",
        "cycle_len",
        "cycle_at",
    )

    @classmethod
    def after(
        cls,
        grammar: Grammar,
        prompts: list[list[int]],
        device,
        *,
        time_signatures: list[int] | None = None,
        open_bar: bool = False,
        first_onset: tuple[int, int] | None = None,
        cycles: list[tuple[tuple[int, ...], int]] | None = None,
    ) -> GrammarState:
        """The state at the end of each prompt; `time_signatures` are the metres to keep
        (NONE, the default: the first one the row chooses), `open_bar` starts on a bar line.
        `first_onset` (first, last): the rows go on inside the prompt's last bar, their first
        id a Position within first..last (`open_bar` is then ignored). `cycles`: per row, the
        metres its bars state in turn and the one its next bar states (() : none)."""
        last_type, position, limit = [], [], []
        for prompt in prompts:
            ids = torch.tensor(prompt, dtype=torch.long, device=grammar.last_type.device)
            kind, pos, lim = T["BOS"], NONE, NO_LIMIT
            if len(ids):
                kind = int(grammar.last_type[ids[-1]])
                # The last id that set a position or opened a bar (which clears it) holds.
                last_pos = grammar.last_position[ids]
                sets = ((last_pos != NONE) | grammar.opens_bar[ids]).nonzero()
                pos = int(last_pos[sets[-1, 0]]) if len(sets) else NONE
                metres = grammar.time_signature[ids]
                stated = (metres != NONE).nonzero()
                lim = int(grammar.bar_positions[metres[stated[-1, 0]]]) if len(stated) else lim
            if first_onset is not None:
                pos = max(pos, first_onset[0] - 1)
            last_type.append(kind)
            position.append(pos)
            limit.append(lim)
        as_long = lambda xs: torch.tensor(xs, dtype=torch.long, device=device)  # noqa: E731
        rows = len(prompts)
        metres = as_long(time_signatures if time_signatures is not None else [NONE] * rows)
        opens = torch.full(
            (rows,), open_bar and first_onset is None, dtype=torch.bool, device=device
        )
        first_by = as_long([NONE if first_onset is None else first_onset[1]] * rows)
        cycles = cycles or [((), 0)] * rows
        cycle = as_long([[*c, *[NONE] * (MAX_METRE_PARTS - len(c))] for c, _ in cycles])
        cycle_len = as_long([len(c) for c, _ in cycles])
        cycle_at = as_long([at for _, at in cycles])
        metres = torch.where(cycle_len > 0, cycle.gather(1, cycle_at[:, None])[:, 0], metres)
        zeros = as_long([0] * rows)
        # The bar's ids count toward its cap from the seam on: the seed's part of the bar may
        # be dense, and a crowded bar would have no onset left to write.
        return cls(
            as_long(last_type),
            as_long(position),
            as_long(limit),
            zeros,
            zeros.clone(),
            metres,
            opens,
            first_by,
            cycle,
            cycle_len,
            cycle_at,
        )

    def crowd(self) -> torch.Tensor:
        """(B,) each row's row of Grammar.crowd_allows."""
        crowded = (self.bar_tokens >= BAR_TOKEN_CAP).long()
        mid_event = (self.last_type == T["Position"]) | (self.last_type == T["Tempo"])
        return crowded * (CROWDED + mid_event.long())

    def allowed(
        self, grammar: Grammar, *, keep_tempo: torch.Tensor, want_program: torch.Tensor
    ) -> torch.Tensor:
        """(B, V) bool mask of the ids each sequence may take next.

        Never empty: from every state the grammar can reach, some id leads on to the next
        bar line within a bounded number of ids (tests/engine/test_grammar.py walks them all).
        """
        ok = grammar.follows[self.last_type][:, grammar.first_type]  # (B, V)
        ok &= grammar.internally_valid
        first_pos = grammar.first_position
        # A position may only move forward within a bar (a Bar resets it).
        ok &= (first_pos == NONE) | grammar.opens_bar | (first_pos > self.position[:, None])
        # ... and stay inside the bar its time signature measures.
        ok &= (
            (grammar.last_position == NONE)
            | grammar.opens_bar
            | (grammar.last_position < self.limit[:, None])
        )
        ok &= ~(grammar.has_tempo & keep_tempo[:, None])
        ts, want_ts = grammar.time_signature, self.time_signature[:, None]
        ok &= (ts == NONE) | (want_ts == NONE) | (ts == want_ts)
        prog = grammar.program
        ok &= (prog == NONE) | (want_program[:, None] == NONE) | (prog == want_program[:, None])
        # A prompt that stops mid-note finishes that note before its bar line.
        must_open = self.open_bar & grammar.follows[self.last_type, T["Bar"]]
        ok &= grammar.opens_bar | ~must_open[:, None]
        # Going on inside the seed's last bar: first an onset, soon after where the seed stops.
        first = (grammar.first_type == T["Position"]) & (first_pos <= self.first_by[:, None])
        ok &= first | (self.first_by == NONE)[:, None]
        # A crowded bar may finish its note under way, then only close.
        ok &= grammar.crowd_allows[self.crowd()]
        ok[:, grammar.first_type == T["EOS"]] = False  # length is ours to decide, in bars
        return ok

    def advance(self, grammar: Grammar, ids: torch.Tensor) -> None:
        """Move every sequence past its sampled id (B,)."""
        opens = grammar.opens_bar[ids]
        last_pos = grammar.last_position[ids]
        self.position = torch.where(
            last_pos != NONE,
            last_pos,
            torch.where(opens, torch.full_like(last_pos, NONE), self.position),
        )
        ts = grammar.time_signature[ids]
        self.limit = torch.where(ts != NONE, grammar.bar_positions[ts.clamp(min=0)], self.limit)
        # The first time signature chosen (when none was asked) holds for the rest.
        self.time_signature = torch.where(
            (self.time_signature == NONE) & (ts != NONE), ts, self.time_signature
        )
        # A row with a cycle of metres: once a bar has stated its metre, the next bar's is due.
        turns = (ts != NONE) & (self.cycle_len > 0)
        self.cycle_at = torch.where(
            turns, (self.cycle_at + 1) % self.cycle_len.clamp(min=1), self.cycle_at
        )
        self.time_signature = torch.where(
            turns, self.cycle.gather(1, self.cycle_at[:, None])[:, 0], self.time_signature
        )
        self.open_bar = self.open_bar & ~opens
        self.first_by = torch.where(last_pos != NONE, NONE, self.first_by)
        self.bars = self.bars + opens.long()
        self.bar_tokens = torch.where(opens, torch.ones_like(self.bar_tokens), self.bar_tokens + 1)
        self.last_type = grammar.last_type[ids]
