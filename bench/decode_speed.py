"""Decode speed of the shipped model: our fused step vs calling nn.LSTM one token at a time.

    .venv/bin/python -m bench.decode_speed [--steps 200] [--repeats 5]

Prints tokens/s at batch 1, 4, 16, 64 for both steps (median of repeats) and their ratio,
then the end-to-end time of `Composer.compose` for 4 candidates x 16 bars from the bundled
seed (median and each stage). Results are also returned as a dict for bench/report.py.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from engine.checkpoint import BASE_CHECKPOINT, load_checkpoint
from engine.device import configure_threads

BATCHES = (1, 4, 16, 64)


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
        ours = statistics.median(tokens_per_second(model.step, model, batch, steps)
                                 for _ in range(repeats))
        ref = statistics.median(tokens_per_second(model.step_reference, model, batch, steps)
                                for _ in range(repeats))
        rows.append({"batch": batch, "fused_tokens_per_s": ours, "nn_lstm_tokens_per_s": ref,
                     "ratio": ours / ref})
    return rows


def compose_timings(repeats: int) -> dict:
    from engine.composer import ComposeParams, Composer, warm_up
    from engine.paths import REPO_ROOT

    composer = Composer()
    warm_up(composer)
    seed = (REPO_ROOT / "engine" / "examples" / "motif.mid").read_bytes()
    runs = [composer.compose(seed, ComposeParams(bars=16, candidates=4, seed=i))
            for i in range(repeats)]
    stages = {k: statistics.median(r.timings[k] for r in runs) for k in runs[0].timings}
    stages["invalid_rate"] = statistics.mean(r.invalid_rate for r in runs)
    stages["tokens_per_candidate"] = statistics.mean(
        c.tokens for r in runs for c in r.candidates)
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    configure_threads()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'batch':>5} {'fused tok/s':>12} {'nn.LSTM tok/s':>14} {'ratio':>6}")
    for row in decode_table(args.steps, args.repeats):
        print(f"{row['batch']:>5} {row['fused_tokens_per_s']:>12,.0f} "
              f"{row['nn_lstm_tokens_per_s']:>14,.0f} {row['ratio']:>6.2f}")
    timings = compose_timings(args.repeats)
    print("compose 4 x 16 bars from engine/examples/motif.mid (median):")
    for key, value in timings.items():
        print(f"  {key:>20}: {value:.3f}")


if __name__ == "__main__":
    main()
