"""Instruments the model writes: continuations forced onto one GM program.

    .venv/bin/python -m bench.programs [--quick] [--checkpoint CKPT]

For each program, held-out openings (their first bars) are voiced on that program (moved by
octaves into its range) and continued with the sampler's program mask forced to it, as a
member's sax or bass seed would be. A model that learned the instrument writes what it
expects to write; one that never saw it writes tokens it finds unlikely. Per program: the
mean log-probability the model gives the ids it sampled (nats per id, under its own
unmasked distribution: the closer to piano's the better), the invalid-token rate (probability
on ids the grammar and the mask refused, per step), the share of written notes inside the
instrument's range, and how many training notes the checkpoint records for it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from symusic import Score

from bench.continuations import SEED_BARS, Opening, choose_openings
from bench.heldout import bench_corpus
from bench.markdown import percent, table
from bench.section import Headline, Report, Section
from engine.api.instruments import family_of
from engine.data.augment import RANGES
from engine.generation.grammar import Grammar
from engine.generation.sample import DecodeBatch, Row, SamplingOptions
from engine.model.checkpoint import BASE_CHECKPOINT, Checkpoint, load_checkpoint
from engine.model.device import configure_threads

# piano, then what members' seeds bring: alto sax, bass, square lead, flute, violin, trumpet,
# nylon guitar, string ensemble, church organ.
PROGRAMS = (0, 65, 33, 80, 73, 40, 56, 24, 48, 19)
OPENINGS, QUICK_OPENINGS = 40, 12
BARS = 8


@dataclass
class ProgramFigures:
    program: int
    log_prob: float  # nats per sampled id, unmasked model
    invalid_rate: float
    in_range: float  # share of written notes inside the program's range
    notes: int  # written
    training_notes: int | None  # recorded in the checkpoint; None: not recorded


def voiced(score: Score, program: int) -> Score:
    """The seed with every pitched track on `program`, moved by octaves toward its range."""
    out = score.copy()
    low, high = RANGES[program]
    pitches = [n.pitch for t in out.tracks if not t.is_drum for n in t.notes]
    middle = (min(pitches) + max(pitches)) / 2
    shift = 12 * round(((low + high) / 2 - middle) / 12)
    shift = max(shift, 21 - min(pitches)) if min(pitches) + shift < 21 else shift
    for track in out.tracks:
        if not track.is_drum:
            track.program = program
            track.shift_pitch(shift, inplace=True)
    return out


@torch.no_grad()
def sampled_log_prob(ckpt: Checkpoint, prompt: list[int], written: list[int]) -> float:
    """Summed log-probability (nats) of `written` after `prompt`, unmasked, temperature 1."""
    ids = torch.tensor([prompt + written], dtype=torch.long)
    logits, _ = ckpt.model(ids[:, :-1])
    logp = torch.log_softmax(logits.float(), dim=-1)[0]
    targets = ids[0, 1:]
    picked = logp.gather(1, targets[:, None])[:, 0]
    return float(picked[len(prompt) - 1 :].sum())


def measure(
    ckpt: Checkpoint, grammar: Grammar, openings: list[Opening], program: int
) -> ProgramFigures:
    tok = ckpt.tokenizer
    batch = DecodeBatch(ckpt.model, grammar)
    prompts: list[tuple[list[int], Row]] = []
    for i, opening in enumerate(openings):
        ids = tok.encode(voiced(opening.seed, program))
        if not ids:
            continue
        generator = torch.Generator()
        generator.manual_seed(i)
        row = Row(
            request=i, generator=generator, options=SamplingOptions(bars=BARS, program=program)
        )
        prompt = [tok.bos_id, *ids]
        batch.add(prompt, [row])
        prompts.append((prompt, row))
    while len(batch):
        batch.step()
    total_logp = total_ids = steps = 0.0
    invalid = 0.0
    inside = notes = 0
    low, high = RANGES[program]
    for prompt, row in prompts:
        total_logp += sampled_log_prob(ckpt, prompt, row.tokens)
        total_ids += len(row.tokens)
        invalid += row.invalid_mass
        steps += row.steps
        try:
            score = tok.decode(row.tokens)
        except Exception:  # counted as no notes: the bench of validity is bench.quality
            continue
        pitch = np.concatenate(
            [t.notes.numpy()["pitch"] for t in score.tracks if t.note_num()] or [np.zeros(0)]
        )
        notes += len(pitch)
        inside += int(((pitch >= low) & (pitch <= high)).sum())
    coverage = ckpt.coverage
    return ProgramFigures(
        program,
        total_logp / max(1, total_ids),
        invalid / max(1, steps),
        inside / max(1, notes),
        notes,
        coverage.notes_of(program) if coverage else None,
    )


def run_with(checkpoint: Path, quick: bool) -> tuple[list[ProgramFigures], int]:
    configure_threads(decoding=False)
    torch.manual_seed(0)
    ckpt = load_checkpoint(checkpoint)
    openings = choose_openings(bench_corpus(), QUICK_OPENINGS if quick else OPENINGS)
    grammar = Grammar.build(ckpt.tokenizer)
    return [measure(ckpt, grammar, openings, p) for p in PROGRAMS], len(openings)


def markdown(figures: list[ProgramFigures], openings: int) -> str:
    piano = figures[0]
    rows = [
        [
            f"{f.program} ({family_of(f.program)})",
            f"{f.log_prob:.2f}",
            f"{f.log_prob - piano.log_prob:+.2f}",
            percent(f.invalid_rate),
            percent(f.in_range),
            f"{f.notes:,}",
            "not recorded" if f.training_notes is None else f"{f.training_notes:,}",
        ]
        for f in figures
    ]
    return "\n\n".join(
        [
            table(
                [
                    "program",
                    "log-prob of sampled ids (nats)",
                    "vs piano",
                    "invalid-token rate",
                    "notes in range",
                    "notes written",
                    "training notes",
                ],
                rows,
            ),
            f"{openings} held-out openings ({SEED_BARS} bars each) voiced on each program, "
            f"{BARS} bars written per opening with the program mask forced to it (temperature 1, "
            "top-p 0.95). Log-probabilities are the model's own, unmasked, for the ids it wrote.",
        ]
    )


def run(quick: bool) -> Report:
    figures, openings = run_with(BASE_CHECKPOINT, quick)
    others = figures[1:]
    worst = min(others, key=lambda f: f.log_prob)
    return Report(
        markdown(figures, openings),
        [
            Headline(
                "log-prob of ids written on forced programs (sax, bass, lead, flute, ...), worst",
                f"{worst.log_prob:.2f} nats (program {worst.program})",
                f"piano: {figures[0].log_prob:.2f} nats",
            )
        ],
    )


SECTION = Section(
    "Instruments the model writes (program mask forced)", ".venv/bin/python -m bench.programs", run
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=SECTION.title)
    parser.add_argument("--quick", action="store_true", help="fewer openings (development)")
    parser.add_argument("--checkpoint", type=Path, default=BASE_CHECKPOINT)
    args = parser.parse_args()
    print(markdown(*run_with(args.checkpoint, args.quick)))
