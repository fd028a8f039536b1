"""Held-out NLL of the shipped model against n-gram baselines on the same tokens.

    .venv/bin/python -m bench.nll

The LSTM is measured as `python -m engine eval` measures it (one lane, the state carried
through each group's pieces end to end); the n-grams are fitted on the training pieces of the
same collections (bench/heldout.py). --quick changes nothing here: it takes under a minute.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.heldout import bench_corpus, is_score
from bench.markdown import percent, table
from bench.section import Headline, Report, Section, main
from engine.model.checkpoint import BASE_CHECKPOINT, load_checkpoint
from engine.model.device import configure_threads
from engine.training.loop import evaluate_bits
from engine.training.ngram import NGramModel
from engine.training.streams import TokenStream, build_stream

NGRAM_ORDERS = (3, 4, 5)


@dataclass
class ModelBits:
    """Bits per token of one model on each group, combined over all held-out tokens."""

    name: str
    bits: dict[str, float]

    def overall(self, streams: dict[str, TokenStream]) -> float:
        weights = {g: len(s.ids) - 1 for g, s in streams.items()}
        return sum(self.bits[g] * w for g, w in weights.items()) / sum(weights.values())


def tokenize(groups: dict[str, list[Path]], tokenizer) -> dict[str, TokenStream]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"  # the workers load the checkpoint's own tokenizer
        tokenizer.save(path)
        return {
            name: build_stream(
                paths, tokenizer, path, workers=os.cpu_count() or 2, desc=f"tokenize {name}"
            )
            for name, paths in groups.items()
        }


def run(quick: bool) -> Report:
    configure_threads(decoding=False)
    corpus = bench_corpus()
    ckpt = load_checkpoint(BASE_CHECKPOINT)
    heldout = corpus.pieces("valid")
    started = time.perf_counter()
    streams = tokenize(
        {
            "folk tunes": [corpus.path(e) for e in heldout if not is_score(e["id"])],
            "Bach chorales": [corpus.path(e) for e in heldout if is_score(e["id"])],
        },
        ckpt.tokenizer,
    )
    train = tokenize({"train": corpus.paths("train")}, ckpt.tokenizer)["train"]
    tokenize_seconds = time.perf_counter() - started

    started = time.perf_counter()
    lstm = ModelBits(
        "LSTM (shipped, fp16 weights)",
        {g: evaluate_bits(ckpt.model, s.ids, parts=1) for g, s in streams.items()},
    )
    lstm_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ngrams = []
    for order in NGRAM_ORDERS:
        model = NGramModel(order, ckpt.tokenizer.vocab_size).fit(train.ids)
        ngrams.append(
            ModelBits(
                f"{order}-gram (interpolated absolute discounting)",
                {g: model.bits_per_token(s.ids) for g, s in streams.items()},
            )
        )
    ngram_seconds = time.perf_counter() - started

    tokens = sum(len(s.ids) - 1 for s in streams.values())
    notes = sum(s.notes for s in streams.values())
    shipped_order = ckpt.meta.get("ngram_baseline", {}).get("order", 4)
    baseline = next(s for s in ngrams if s.name.startswith(f"{shipped_order}-gram"))
    best = min(ngrams, key=lambda s: s.overall(streams))

    header = [
        "model",
        *(f"{g} ({s.pieces} pieces)" for g, s in streams.items()),
        "all held-out, bits/token",
        "bits/note",
    ]
    rows = [
        [
            s.name,
            *(f"{s.bits[g]:.3f}" for g in streams),
            f"**{s.overall(streams):.3f}**" if s is lstm else f"{s.overall(streams):.3f}",
            f"{s.overall(streams) * tokens / notes:.2f}",
        ]
        for s in (lstm, *ngrams)
    ]
    saved = 1 - lstm.overall(streams) / best.overall(streams)
    markdown = "\n\n".join(
        [
            corpus.describe(),
            table(header, rows),
            f"Held-out: {tokens:,} predicted tokens, {notes:,} notes. The LSTM needs "
            f"{percent(saved)} fewer bits per token than the best n-gram ({best.name.split()[0]}). "
            f"The n-grams are fitted on the {train.pieces:,} training pieces of the same "
            f"collections ({len(train.ids):,} tokens); the LSTM was trained on the whole corpus, "
            f"whose training split holds them. Bits per note = bits per token x tokens / notes. "
            f"The whole held-out split of every collection is in README.md (`make train` "
            f"measures it).",
            f"Time: tokenizing {tokenize_seconds:.0f} s, LSTM evaluation {lstm_seconds:.0f} s "
            f"(torch on {os.cpu_count()} threads), fitting and scoring the n-grams "
            f"{ngram_seconds:.0f} s.",
        ]
    )
    return Report(
        markdown,
        [
            Headline(
                "held-out bits/token (folk + Bach subset)",
                f"{lstm.overall(streams):.2f}",
                f"{shipped_order}-gram baseline: {baseline.overall(streams):.2f}",
            )
        ],
    )


SECTION = Section(
    "Held-out NLL: the LSTM against n-gram baselines", ".venv/bin/python -m bench.nll", run
)

if __name__ == "__main__":
    main(SECTION)
