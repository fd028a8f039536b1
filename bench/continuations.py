"""Continuations of held-out openings, beside the true rest of each piece.

Each chosen held-out piece gives a seed (its first SEED_BARS bars) and a reference (the next
BARS bars as written). The Composer plans every seed the way a request is planned, and all of
them decode together in one batch (the engine's DecodeBatch), one sampling seed per piece.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from symusic import Score

from bench.heldout import Corpus, by_hash, is_score
from engine.api.errors import BadRequest, BadSeed
from engine.core.composer import Composer, ComposeRequest, Plan, to_score
from engine.evaluation.musical_stats import Notes, bar_lines, segment
from engine.generation.sample import DecodeBatch, Row

SEED_BARS = 4
BARS = 8  # short keeps 200 continuations within a minute on a CPU


@dataclass
class Opening:
    piece_id: str
    seed: Score  # the first SEED_BARS bars (or as many as asked)
    reference: Score  # the next BARS bars as written
    beats: float  # the reference's length in quarter notes


@dataclass
class Continuation:
    opening: Opening
    plan: Plan
    row: Row
    score: Score | None  # None when the tokens did not decode to valid MIDI


def opening_of(
    piece_id: str, piece: Score, *, seed_bars: int = SEED_BARS, bars: int = BARS
) -> Opening | None:
    """Seed (the first `seed_bars` bars) and reference (the next `bars`) of a piece long
    enough to have notes in both, else None."""
    lines = bar_lines(piece, seed_bars + bars)
    if piece.end() <= lines[-2]:  # the piece must reach into the reference's last bar
        return None
    seed, _ = segment(piece, 0, seed_bars)
    reference, beats = segment(piece, seed_bars, bars)
    if not len(Notes.of(seed)) or not len(Notes.of(reference)):
        return None
    return Opening(piece_id, seed, reference, beats)


def choose_openings(corpus: Corpus, count: int) -> list[Opening]:
    """Every held-out chorale that qualifies, then folk tunes in a fixed hashed order."""
    heldout = sorted(corpus.pieces("valid"), key=lambda e: (not is_score(e["id"]), by_hash(e)))
    openings = []
    for entry in heldout:
        opening = opening_of(entry["id"], Score(corpus.path(entry)))
        if opening is not None:
            openings.append(opening)
            if len(openings) == count:
                break
    return openings


def is_valid(composer: Composer, row: Row) -> bool:
    """MidiTok finds no grammar error in the ids, and their MIDI reads back with notes."""
    tokenizer = composer.tokenizer
    if tokenizer.remi.tokens_errors(tokenizer.to_base(row.tokens)) != 0:
        return False
    try:
        return Score.from_midi(tokenizer.decode(row.tokens).dumps_midi()).note_num() > 0
    except Exception:  # symusic raises plain RuntimeErrors on MIDI it cannot read
        return False


@dataclass
class Generation:
    continuations: list[Continuation]
    skipped: dict[str, str]  # piece id -> why its seed was refused
    decode_seconds: float

    @property
    def tokens(self) -> int:
        return sum(len(c.row.tokens) for c in self.continuations)


@torch.no_grad()
def continue_openings(composer: Composer, openings: list[Opening]) -> Generation:
    batch = DecodeBatch(composer.model, composer.grammar)
    planned, skipped = [], {}
    for i, opening in enumerate(openings):
        try:
            plan = composer.plan(
                opening.seed.dumps_midi(), ComposeRequest(bars=BARS, candidates=1, seed=i)
            )
        except (BadSeed, BadRequest) as exc:
            skipped[opening.piece_id] = str(exc)
            continue
        generator = torch.Generator()
        generator.manual_seed(i)
        row = Row(request=plan, generator=generator, options=plan.options, guidance=plan.guidance)
        batch.add(plan.prompt.ids, [row], first_onset=plan.prompt.first_onset)
        planned.append((opening, plan, row))
    started = time.perf_counter()
    while len(batch):
        batch.step()
    decode_seconds = time.perf_counter() - started
    continuations = [
        Continuation(
            opening,
            plan,
            row,
            to_score(composer.tokenizer, plan, row.tokens) if is_valid(composer, row) else None,
        )
        for opening, plan, row in planned
    ]
    return Generation(continuations, skipped, decode_seconds)
