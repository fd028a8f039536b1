"""Which instruments a model learned: notes and pieces per GM program in its training data.

A checkpoint records this (meta["programs"], written by `engine train`), so the sampler can
tell a program the model learned to write from one it never saw: forcing the model onto a
program it never trained on gives noise, and such parts are better continued from the seed's
own material. Counted on the training token stream itself, so it is exactly what the model
saw (BPE ids are expanded to their REMI tokens; every note carries one Program token).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.model.tokenizer import MidiTokenizer

DRUMS = -1  # the program of drum notes in the tokens (Program_-1)
PROGRAMS = (DRUMS, *range(128))
# Below this many training notes a program counts as not learned. A program the augmented
# corpus voices at all gets tens of thousands; one it never voices gets none; a server's
# fine-tune may add a few hundred, which the model does not learn an instrument from.
LEARNED_MIN_NOTES = 2000


@dataclass(frozen=True)
class ProgramCoverage:
    """Training notes and pieces per GM program (-1: drums); absent programs have none."""

    notes: dict[int, int]
    pieces: dict[int, int]

    def notes_of(self, program: int) -> int:
        _check(program)
        return self.notes.get(program, 0)

    def pieces_of(self, program: int) -> int:
        _check(program)
        return self.pieces.get(program, 0)

    def learned(self, program: int, *, min_notes: int = LEARNED_MIN_NOTES) -> bool:
        """Whether the model saw enough notes of `program` (-1: drums) to write it."""
        return self.notes_of(program) >= min_notes

    def learned_programs(self, *, min_notes: int = LEARNED_MIN_NOTES) -> frozenset[int]:
        return frozenset(p for p, n in self.notes.items() if n >= min_notes)

    def plus(self, other: ProgramCoverage) -> ProgramCoverage:
        """Both counts together (a fine-tune: its parent's data and the server's)."""
        return ProgramCoverage(
            {p: self.notes.get(p, 0) + other.notes.get(p, 0) for p in {*self.notes, *other.notes}},
            {
                p: self.pieces.get(p, 0) + other.pieces.get(p, 0)
                for p in {*self.pieces, *other.pieces}
            },
        )

    def to_record(self) -> dict:
        """JSON-ready: every program listed, the ones never seen with zeros."""
        return {
            "learned_min_notes": LEARNED_MIN_NOTES,
            "programs": {
                str(p): {"notes": self.notes.get(p, 0), "pieces": self.pieces.get(p, 0)}
                for p in PROGRAMS
            },
        }

    @classmethod
    def from_record(cls, record: dict) -> ProgramCoverage:
        programs = record["programs"]
        return cls(
            {int(p): int(v["notes"]) for p, v in programs.items()},
            {int(p): int(v["pieces"]) for p, v in programs.items()},
        )


def _check(program: int) -> None:
    if not DRUMS <= program <= 127:
        raise ValueError(f"program must be within 0 and 127, or -1 for drums (received {program})")


def count_programs(ids: np.ndarray, tokenizer: MidiTokenizer) -> ProgramCoverage:
    """Notes and pieces per program in a token stream of `BOS ... EOS` pieces."""
    per_id: dict[int, dict[int, int]] = {}  # id -> {program: Program tokens inside it}
    for token_id in range(tokenizer.vocab_size):
        for token in tokenizer.base_tokens(token_id):
            kind, _, value = token.partition("_")
            if kind == "Program":
                inner = per_id.setdefault(token_id, {})
                inner[int(value)] = inner.get(int(value), 0) + 1
    ids = np.asarray(ids)
    occurrences = np.bincount(ids, minlength=tokenizer.vocab_size)
    piece_of = np.cumsum(ids == tokenizer.bos_id)
    notes: dict[int, int] = {}
    carriers: dict[int, list[int]] = {}
    for token_id, programs in per_id.items():
        for program, count in programs.items():
            notes[program] = notes.get(program, 0) + int(occurrences[token_id]) * count
            if occurrences[token_id]:
                carriers.setdefault(program, []).append(token_id)
    pieces = {
        program: int(np.unique(piece_of[np.isin(ids, carrying)]).size)
        for program, carrying in carriers.items()
    }
    return ProgramCoverage(
        {p: n for p, n in notes.items() if n}, {p: n for p, n in pieces.items() if n}
    )
