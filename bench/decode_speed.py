"""Decode speed of the shipped model: our fused step vs calling nn.LSTM one token at a time,
the memory-bandwidth bound of one step, and larger LSTMs (`engine train --hidden --layers`).

    .venv/bin/python -m bench.decode_speed [--quick]

Tokens/s at batch 1, 4, 16, 64 for both steps (median of repeats, one torch thread as the
engine decodes) and their ratio. At batch 1 a step reads every weight once for one token, so
memory bandwidth bounds it: weight bytes per step / the bandwidth of a large copy, timed here.
Larger LSTMs (random weights, the shipped vocabulary) are timed the same way with the fused
step, to show what a bigger model costs per composition.
"""

from __future__ import annotations

import statistics
import time

import torch

from bench.figures import new_figure, save
from bench.markdown import table
from bench.section import Headline, Report, Section, main
from engine.model.checkpoint import BASE_CHECKPOINT, load_checkpoint
from engine.model.device import configure_threads
from engine.model.lstm import LSTMLanguageModel

BATCHES = (1, 4, 16, 64)
# (layers, hidden) of larger models `engine train --layers --hidden` makes; shipped first.
SIZES = ((2, 512), (3, 512), (2, 1024), (4, 1024))
SIZE_BATCHES = (1, 16)
DRAM_BUFFER_MB = 512  # far beyond any CPU cache
STEPS, REPEATS = 200, 5
QUICK_STEPS, QUICK_REPEATS = 50, 2


def tokens_per_second(step, model, batch: int, steps: int) -> float:
    state = model.zero_state(batch)
    tokens = torch.randint(0, model.config.vocab_size, (batch,))
    for _ in range(5):  # warm the allocator and oneDNN's kernels
        _, state = step(tokens, state)
    started = time.perf_counter()
    for _ in range(steps):
        _, state = step(tokens, state)
    return batch * steps / (time.perf_counter() - started)


def decode_table(steps: int, repeats: int) -> list[dict]:
    model = load_checkpoint(BASE_CHECKPOINT).model
    rows = []
    for batch in BATCHES:
        ours = statistics.median(
            tokens_per_second(model.step, model, batch, steps) for _ in range(repeats)
        )
        ref = statistics.median(
            tokens_per_second(model.step_reference, model, batch, steps) for _ in range(repeats)
        )
        rows.append(
            {
                "batch": batch,
                "fused_tokens_per_s": ours,
                "nn_lstm_tokens_per_s": ref,
                "ratio": ours / ref,
            }
        )
    return rows


def size_table(steps: int, repeats: int) -> list[dict]:
    """Fused-step tokens/s of LSTMs of SIZES at SIZE_BATCHES."""
    from engine.model.lstm import ModelConfig

    shipped = load_checkpoint(BASE_CHECKPOINT).model.config
    rows = []
    for layers, hidden in SIZES:
        torch.manual_seed(0)
        model = LSTMLanguageModel(
            ModelConfig(shipped.vocab_size, shipped.embed_dim, hidden, layers)
        ).eval()
        rates = {
            batch: statistics.median(
                tokens_per_second(model.step, model, batch, steps) for _ in range(repeats)
            )
            for batch in SIZE_BATCHES
        }
        rows.append(
            {"layers": layers, "hidden": hidden, "parameters": model.num_parameters()}
            | {f"batch_{b}": r for b, r in rates.items()}
        )
    return rows


def weight_bytes_per_step(model: LSTMLanguageModel) -> int:
    """Bytes a decode step must read: the LSTM and output weights, one embedding row."""
    read = sum(
        p.numel() * p.element_size()
        for name, p in model.named_parameters()
        if not name.startswith("embed")
    )
    return read + model.config.embed_dim * model.embed.weight.element_size()


def copy_bandwidth(nbytes: int, repeats: int) -> float:
    """Bytes moved per second (read + write) when torch copies a buffer of `nbytes`."""
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)  # touch every page first
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - started)
    return 2 * src.numel() * 4 / statistics.median(times)


def draw(rows: list[dict], dram_bound: float) -> str:
    fig = new_figure(6, 3.8)
    ax = fig.add_subplot()
    batches = [r["batch"] for r in rows]
    ax.plot(batches, [r["fused_tokens_per_s"] for r in rows], "o-", label="fused step (ours)")
    ax.plot(batches, [r["nn_lstm_tokens_per_s"] for r in rows], "s-", label="nn.LSTM step")
    ax.plot(
        batches,
        [b * dram_bound for b in batches],
        "k--",
        linewidth=1,
        label="DRAM bandwidth bound (weights read once per step)",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel("batch (sequences decoded together)")
    ax.set_ylabel("tokens/s, one thread")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, "decode-speed", "decode tokens/s by batch")


def run(quick: bool) -> Report:
    threads = configure_threads()
    steps, repeats = (QUICK_STEPS, QUICK_REPEATS) if quick else (STEPS, REPEATS)
    model = load_checkpoint(BASE_CHECKPOINT).model
    rows = decode_table(steps, repeats)
    sizes = size_table(steps, repeats)
    per_step = weight_bytes_per_step(model)
    dram = copy_bandwidth(DRAM_BUFFER_MB * 2**20, repeats)
    cached = copy_bandwidth(per_step, 20 * repeats)
    dram_bound, cached_bound = dram / per_step, cached / per_step
    fused_1 = rows[0]["fused_tokens_per_s"]
    body = table(
        ["batch", "fused step, tokens/s", "nn.LSTM step, tokens/s", "ratio"],
        [
            [
                r["batch"],
                f"{r['fused_tokens_per_s']:,.0f}",
                f"{r['nn_lstm_tokens_per_s']:,.0f}",
                f"{r['ratio']:.2f}",
            ]
            for r in rows
        ],
    )
    bound = table(
        ["batch 1", "tokens/s"],
        [
            ["fused step, measured", f"{fused_1:,.0f}"],
            [
                f"bound from DRAM: {dram / 1e9:.1f} GB/s copying a {DRAM_BUFFER_MB} MB buffer",
                f"{dram_bound:,.0f}",
            ],
            [
                f"bound from caches: {cached / 1e9:.1f} GB/s copying a buffer of the weights' size",
                f"{cached_bound:,.0f}",
            ],
        ],
    )
    markdown = "\n\n".join(
        [
            f"Median of {repeats} runs of {steps} steps, {threads} torch thread(s), shipped "
            f"model ({model.num_parameters() / 1e6:.1f} M parameters) in float32.",
            body,
            f"A step at batch 1 reads {per_step / 1e6:.1f} MB of weights for one token, so memory "
            f"bandwidth caps it; the cap rises with the batch, since the weights are read once "
            f"for every sequence of the step.",
            bound,
            f"At batch 1 the fused step runs at {fused_1 / dram_bound:.0%} of the DRAM bound and "
            f"{fused_1 / cached_bound:.0%} of the cache bound"
            + (
                f"; above the DRAM bound, because the weights ({per_step / 2**20:.0f} MiB) stay "
                f"in the CPU's caches between steps."
                if fused_1 > dram_bound
                else "."
            ),
            draw(rows, dram_bound),
            "Larger LSTMs through the same fused step (random weights, the shipped "
            "vocabulary and embedding); the engine decodes any size `engine train` makes:",
            table(
                [
                    "layers x hidden",
                    "parameters",
                    *(f"batch {b}, tokens/s" for b in SIZE_BATCHES),
                    "batch 1 vs shipped",
                ],
                [
                    [
                        f"{r['layers']} x {r['hidden']}",
                        f"{r['parameters'] / 1e6:.1f} M",
                        *(f"{r[f'batch_{b}']:,.0f}" for b in SIZE_BATCHES),
                        f"{r['batch_1'] / sizes[0]['batch_1']:.2f}x",
                    ]
                    for r in sizes
                ],
            ),
        ]
    )
    by_batch = {r["batch"]: r["ratio"] for r in rows}
    return Report(
        markdown,
        [
            Headline(
                "decode tokens/s at batch 1 / 64 (fused step)",
                f"{fused_1:,.0f} / {rows[-1]['fused_tokens_per_s']:,.0f}",
                f"nn.LSTM step: {rows[0]['nn_lstm_tokens_per_s']:,.0f} / "
                f"{rows[-1]['nn_lstm_tokens_per_s']:,.0f}",
            ),
            Headline(
                "fused step vs nn.LSTM step, batch 1 / 4 / 16 / 64",
                " / ".join(f"{by_batch[b]:.2f}x" for b in BATCHES),
                "1.00x = no gain",
            ),
            Headline(
                "decode tokens/s at batch 1, LSTM 2 x 512 (shipped) / 4 x 1024",
                f"{sizes[0]['batch_1']:,.0f} / {sizes[-1]['batch_1']:,.0f}",
                f"{sizes[-1]['parameters'] / 1e6:.0f} M parameters vs "
                f"{sizes[0]['parameters'] / 1e6:.1f} M",
            ),
            Headline(
                "batch-1 decode vs memory-bandwidth bound",
                f"{fused_1:,.0f} tokens/s",
                f"DRAM bound {dram_bound:,.0f}; cache bound {cached_bound:,.0f}",
            ),
        ],
    )


SECTION = Section(
    "Decode speed: the fused step, nn.LSTM and the bandwidth bound",
    ".venv/bin/python -m bench.decode_speed",
    run,
)

if __name__ == "__main__":
    main(SECTION)
