"""Musical quality: continuations of held-out openings against the true rest of each piece.

    .venv/bin/python -m bench.quality [--quick]

Checks that every continuation decodes to valid MIDI and how much probability the model put on
ids the grammar refused; compares the distributions of six musical features over the generated
and the real continuations (overlapping area of their density estimates, Yang & Lerch 2018);
and counts how often a continuation keeps its seed's key, tempo, metre and instruments, beside
how often the real continuation does. Feature code: engine/evaluation/musical_stats.py.
"""

from __future__ import annotations

import numpy as np

from bench.continuations import BARS, SEED_BARS, Generation, choose_openings, continue_openings
from bench.figures import new_figure, save
from bench.heldout import bench_corpus, is_score
from bench.markdown import percent, table
from bench.section import Headline, Report, Section, main
from engine.core.composer import Composer
from engine.evaluation.musical_stats import (
    CONSISTENCY,
    FEATURES,
    features,
    kde,
    kde_grid,
    overlapping_area,
    seed_consistency,
)
from engine.model.device import configure_threads

PIECES, QUICK_PIECES = 200, 40


def validity_table(gen: Generation) -> tuple[str, float, float]:
    rows = [c.row for c in gen.continuations]
    valid = sum(c.score is not None for c in gen.continuations)
    finished = sum(r.stop_reason == "bars" for r in rows)
    invalid_rate = sum(r.invalid_mass for r in rows) / max(1, sum(r.steps for r in rows))
    n = len(rows)
    markdown = table(
        ["", "measured", "goal"],
        [
            [
                "continuations that decode to valid MIDI",
                f"{valid} of {n} ({percent(valid / n)})",
                "100%",
            ],
            [f"continuations that reach their {BARS} bars", f"{finished} of {n}", "all"],
            [
                "invalid-token rate before masking (probability on refused ids, per step)",
                percent(invalid_rate),
                "as low as possible; the mask makes the output valid",
            ],
            [
                f"decoding all {n} at once",
                f"{gen.tokens:,} tokens in {gen.decode_seconds:.1f} s "
                f"({gen.tokens / gen.decode_seconds:,.0f} tokens/s)",
                "",
            ],
        ],
    )
    return markdown, valid / n, invalid_rate


def feature_values(gen: Generation) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    done = [c for c in gen.continuations if c.score is not None]
    generated = [features(c.score, bars=BARS, beats=c.opening.beats) for c in done]
    real = [features(c.opening.reference, bars=BARS, beats=c.opening.beats) for c in done]
    return (
        {k: np.array([f[k] for f in generated]) for k in FEATURES},
        {k: np.array([f[k] for f in real]) for k in FEATURES},
    )


def features_table(
    generated: dict[str, np.ndarray], real: dict[str, np.ndarray]
) -> tuple[str, dict[str, float]]:
    overlap = {k: overlapping_area(generated[k], real[k]) for k in FEATURES}
    rows = [
        [
            label,
            f"{generated[k].mean():.2f} ({generated[k].std():.2f})",
            f"{real[k].mean():.2f} ({real[k].std():.2f})",
            f"{overlap[k]:.2f}",
        ]
        for k, label in FEATURES.items()
    ]
    return table(
        ["feature", "generated: mean (sd)", "real continuation: mean (sd)", "overlapping area"],
        rows,
    ), overlap


def consistency_table(gen: Generation) -> tuple[str, dict[str, tuple[float, float]]]:
    done = [c for c in gen.continuations if c.score is not None]
    generated = [seed_consistency(c.opening.seed, c.score) for c in done]
    real = [seed_consistency(c.opening.seed, c.opening.reference) for c in done]

    def share(results: list[dict], fact: str) -> tuple[float, int]:
        counted = [r[fact] for r in results if r[fact] is not None]
        return sum(counted) / max(1, len(counted)), len(counted)

    rates, rows = {}, []
    for fact, label in CONSISTENCY.items():
        (ours, n), (theirs, _) = share(generated, fact), share(real, fact)
        rates[fact] = (ours, theirs)
        rows.append([label, percent(ours), percent(theirs), n])
    return table(
        ["keeps the seed's", "generated", "real continuation (baseline)", "pieces"], rows
    ), rates


def draw_features(
    generated: dict[str, np.ndarray], real: dict[str, np.ndarray], overlap: dict[str, float]
) -> str:
    fig = new_figure(10, 5.5)
    for i, (key, label) in enumerate(FEATURES.items()):
        ax = fig.add_subplot(2, 3, i + 1)
        grid, bw_gen, bw_real = kde_grid(generated[key], real[key])
        ax.plot(grid, kde(generated[key], grid, bw_gen), label="generated")
        ax.plot(grid, kde(real[key], grid, bw_real), label="real continuation")
        ax.set_title(f"{label}\noverlap {overlap[key]:.2f}", fontsize=9)
        ax.set_yticks([])
        ax.tick_params(labelsize=8)
        if i == 0:
            ax.legend(fontsize=8)
    return save(fig, "musical-features", "feature densities, generated vs real")


def run(quick: bool) -> Report:
    configure_threads()  # decoding, as the engine does: one thread
    corpus = bench_corpus()
    openings = choose_openings(corpus, QUICK_PIECES if quick else PIECES)
    composer = Composer()
    try:
        gen = continue_openings(composer, openings)
    finally:
        composer.close()
    chorales = sum(is_score(o.piece_id) for o in openings)
    validity, valid_share, invalid_rate = validity_table(gen)
    generated, real = feature_values(gen)
    features_md, overlap = features_table(generated, real)
    consistency_md, rates = consistency_table(gen)
    skipped = f" {len(gen.skipped)} seeds were refused: {gen.skipped}." if gen.skipped else ""
    markdown = "\n\n".join(
        [
            corpus.describe(),
            f"{len(openings)} held-out pieces ({chorales} chorales, the rest folk tunes in a fixed "
            f"hashed order) with at least {SEED_BARS + BARS} bars: the seed is each piece's first "
            f"{SEED_BARS} bars, the model writes {BARS} bars (temperature 1.0, top-p 0.95, "
            f"sampling seed = the piece's index), and the real continuation is the piece's next "
            f"{BARS} bars.{skipped}",
            validity,
            "Features of each 8-bar continuation (drums left out; beats are quarter notes; "
            "polyphony is the mean number of notes sounding while any sounds). The overlapping "
            "area is the area under both kernel density estimates (Gaussian, Scott's bandwidth): "
            "1 when the generated and the real values are distributed alike.",
            features_md,
            draw_features(generated, real, overlap),
            "Seed consistency: the key is found by Krumhansl-Schmuckler (Krumhansl-Kessler "
            "profiles) on the seed and on the continuation; tempo within 1 bpm; metre the same "
            "throughout; instruments: only programs the seed plays. The grammar holds the seed's "
            "tempo, and its metre when the tokenizer can write it (not 4/1, for one), so those two "
            "check the mask; key and instruments are the model's.",
            consistency_md,
        ]
    )
    mean_overlap = float(np.mean(list(overlap.values())))
    return Report(
        markdown,
        [
            Headline("continuations that decode to valid MIDI", percent(valid_share), "goal: 100%"),
            Headline(
                "invalid-token rate before masking",
                percent(invalid_rate),
                "masked: every output is valid",
            ),
            Headline(
                "feature overlap with the real continuations (mean of six)",
                f"{mean_overlap:.2f}",
                "1.00 = alike",
            ),
            Headline(
                "continuations that keep the seed's key",
                percent(rates["key"][0]),
                f"real continuations: {percent(rates['key'][1])}",
            ),
        ],
    )


SECTION = Section("Musical quality of continuations", ".venv/bin/python -m bench.quality", run)

if __name__ == "__main__":
    main(SECTION)
