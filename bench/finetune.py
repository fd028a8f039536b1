"""Fine-tuning one server on about 50 Bach chorales: does its model learn the server's style
without forgetting music in general, and how long does it take on this CPU?

    .venv/bin/python -m bench.finetune [--quick]

The chorales are the server's seeds; fine-tuning runs as the engine runs it for the bot
(engine.finetune.run, default settings), from the shipped base model. Held-out chorales are
the gate's own (a fifth of the server's pieces, chosen by a hash of their bytes). Then both
models continue the opening bars of those held-out chorales, and the features of their
continuations are compared with the chorales' real continuations.

A server's music is new to the model, but the base model trained on all but 16 of music21's
chorales and knows those nearly by heart (measured here: a few bits per token against about
eight on the others). So the chorales it trained on are transposed by a few semitones, each
by its own fixed interval: the same style, not the same token sequences.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from symusic import Score

from bench.continuations import BARS, SEED_BARS, continue_openings, opening_of
from bench.heldout import bench_corpus
from bench.markdown import table
from bench.quality import feature_values
from bench.section import Headline, Report, Section, main
from engine.core.composer import Composer
from engine.data.chorales import convert_chorales
from engine.data.corpus import split_of
from engine.evaluation.musical_stats import FEATURES, overlapping_area
from engine.finetune.run import FinetuneConfig, run_finetune
from engine.finetune.server_data import encode_piece, split_pieces
from engine.model.checkpoint import BASE_CHECKPOINT, load_checkpoint
from engine.model.device import configure_threads
from engine.training.loop import evaluate_bits

CHORALES, QUICK_CHORALES = 50, 16
QUICK_STEPS = 20
CANDIDATES = 4  # continuations per held-out opening, each with its own sampling seed
TRANSPOSITIONS = (-5, -4, -3, -2, -1, 1, 2, 3, 4, 5)  # semitones


def base_model_saw(chorale: Path) -> bool:
    return split_of(f"bach/{chorale.stem}") == "train"


def as_server_piece(chorale: Path) -> bytes:
    """The chorale as MIDI bytes, transposed if the base model trained on it."""
    if not base_model_saw(chorale):
        return chorale.read_bytes()
    digest = int(hashlib.sha1(chorale.stem.encode()).hexdigest(), 16)
    return Score(chorale).shift_pitch(TRANSPOSITIONS[digest % len(TRANSPOSITIONS)]).dumps_midi()


def base_bits_by_familiarity(chorales: list[Path]) -> dict[str, float]:
    """The base model's bits/token on the chorales as written, those it trained on vs not."""
    ckpt = load_checkpoint(BASE_CHECKPOINT)
    groups = {
        "trained on": [c for c in chorales if base_model_saw(c)],
        "never seen": [c for c in chorales if not base_model_saw(c)],
    }
    bits = {}
    for name, paths in groups.items():
        ids = [
            i for p in paths if (e := encode_piece(ckpt.tokenizer, p.read_bytes())) for i in e[0]
        ]
        if ids:
            bits[name] = evaluate_bits(ckpt.model, np.asarray(ids, dtype=np.int32), parts=1)
    return bits


def tune(pieces: list[bytes], out: Path, data_dir: Path, quick: bool):
    configure_threads(decoding=False)  # all cores, as a lone `engine finetune` would
    config = FinetuneConfig(steps=QUICK_STEPS) if quick else FinetuneConfig()
    started = time.perf_counter()
    outcome = run_finetune(
        pieces,
        [],
        out,
        data_dir=data_dir,
        config=config,
        say=lambda line: print(line, file=sys.stderr),
    )
    return outcome, config, time.perf_counter() - started


def style_table(tuned_path: Path, heldout: list[bytes]) -> tuple[str, int, dict]:
    openings = [
        o
        for i, midi in enumerate(heldout)
        if (o := opening_of(f"chorale-{i}", Score.from_midi(midi))) is not None
    ]
    configure_threads()  # decoding: one thread, as the engine does
    base = Composer()
    tuned = Composer(tuned_path, renderer=base.renderer)
    try:
        runs = {
            name: feature_values(continue_openings(c, openings * CANDIDATES))
            for name, c in (("base", base), ("tuned", tuned))
        }
    finally:
        base.close()
    real = runs["base"][1]
    overlap = {
        name: {k: overlapping_area(gen[k], real[k]) for k in FEATURES}
        for name, (gen, _) in runs.items()
    }
    rows = []
    for key, label in FEATURES.items():
        b, t = runs["base"][0][key], runs["tuned"][0][key]
        closer = abs(t.mean() - real[key].mean()) < abs(b.mean() - real[key].mean())
        rows.append(
            [
                label,
                f"{real[key].mean():.2f}",
                f"{b.mean():.2f}",
                f"{t.mean():.2f}",
                f"{overlap['base'][key]:.2f}",
                f"{overlap['tuned'][key]:.2f}",
                "yes" if closer else "no",
            ]
        )
    markdown = table(
        [
            "feature",
            "chorales (real)",
            "base model",
            "tuned model",
            "overlap: base",
            "overlap: tuned",
            "tuned closer?",
        ],
        rows,
    )
    closer = sum(row[-1] == "yes" for row in rows)
    markdown += (
        f"\n\nThe tuned model's continuations are closer to the chorales' in mean on "
        f"{closer} of {len(rows)} features."
    )
    return markdown, len(openings), overlap


def run(quick: bool) -> Report:
    data_dir = bench_corpus().data_dir  # the replay corpus and the base held-out sample
    chorales = convert_chorales(
        QUICK_CHORALES if quick else CHORALES, data_dir / "bench" / "chorales"
    )
    familiarity = base_bits_by_familiarity(chorales)
    pieces = [as_server_piece(p) for p in chorales]
    transposed = sum(base_model_saw(p) for p in chorales)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "chorales.pt"
        outcome, config, wall = tune(pieces, out, data_dir, quick)
        _, heldout = split_pieces(pieces)
        style, openings, overlap = style_table(out, heldout)
    m = outcome.metrics
    per_note = (m["heldout_tokens"] - 1) / max(1, m["heldout_notes"])
    figures = table(
        ["", "before (base model)", "after (tuned)", "change"],
        [
            [
                "held-out chorales, bits/token",
                f"{m['server_nll_before']:.3f}",
                f"{m['server_nll_after']:.3f}",
                f"{m['server_nll_after'] / m['server_nll_before'] - 1:+.1%}",
            ],
            [
                "held-out chorales, bits/note",
                f"{m['server_nll_before'] * per_note:.3f}",
                f"{m['server_nll_after'] * per_note:.3f}",
                "",
            ],
            [
                "base held-out sample, bits/token",
                f"{m['base_nll_reference']:.3f}",
                f"{m['base_nll_after']:.3f}",
                f"{m['base_nll_after'] / m['base_nll_reference'] - 1:+.1%} (gate limit +5%)",
            ],
        ],
    )
    mean = {name: float(np.mean(list(v.values()))) for name, v in overlap.items()}
    markdown = "\n\n".join(
        [
            f"{len(chorales)} chorales from music21. The base model scores those it trained on at "
            f"{familiarity.get('trained on', float('nan')):.2f} bits/token and the others at "
            f"{familiarity.get('never seen', float('nan')):.2f}: it knows its training chorales "
            f"by heart. A server's music is new to it, so the {transposed} it trained on are "
            f"transposed (each by its own 1-5 semitones) and the {len(chorales) - transposed} "
            f"others kept as written. Of the {len(chorales)}, {m['train_pieces']} to learn "
            f"from, {m['heldout_pieces']} held out ({m['heldout_tokens']:,} tokens). Tuning: "
            f"{m['tuning_steps']} of {config.steps} steps (best at step {m['best_step']}), batches "
            f"of {config.batch_size} x {config.seq_len} tokens, half from the chorales and half "
            f"replayed from the base corpus, learning rate {config.lr:g}. "
            f"**Wall time {wall:.0f} s** on this CPU (all cores; the engine's background job "
            f"uses half of them at lower priority, so expect about twice that there).",
            figures,
            f"Gate: **{'accepted' if outcome.accepted else 'rejected'}**: {outcome.reason}.",
            f"Style: {openings} held-out chorale openings ({SEED_BARS} bars) x {CANDIDATES} "
            f"sampling seeds, continued for {BARS} bars by each model (temperature 1.0, top-p "
            f"0.95) and compared with the chorales' real next {BARS} bars. Mean overlapping area "
            f"over the six features: base {mean['base']:.2f}, tuned {mean['tuned']:.2f}.",
            style,
        ]
    )
    change = m["server_nll_after"] / m["server_nll_before"] - 1
    return Report(
        markdown,
        [
            Headline(
                f"fine-tune on {len(chorales)} chorales: held-out chorale NLL",
                f"{change:+.1%}",
                f"base held-out {m['base_nll_after'] / m['base_nll_reference'] - 1:+.1%} "
                f"(limit +5%)",
            ),
            Headline("fine-tune wall time", f"{wall:.0f} s", f"{m['tuning_steps']} steps"),
            Headline(
                "chorale style, feature overlap (base -> tuned)",
                f"{mean['base']:.2f} -> {mean['tuned']:.2f}",
                "1.00 = alike",
            ),
        ],
    )


SECTION = Section(
    "Fine-tuning one server on Bach chorales", ".venv/bin/python -m bench.finetune", run
)

if __name__ == "__main__":
    main(SECTION)
