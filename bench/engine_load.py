"""The engine under load: many compositions at once through the real engine process.

    .venv/bin/python -m bench.engine_load [--concurrent 16] [--repeats 3] [--no-decode-table]

Prints, in one run: decode tokens/s at batch 1, 4, 16, 64 for our fused step vs nn.LSTM
(bench.decode_speed's table), then the wall time of `--concurrent` 4-candidate 16-bar
compositions submitted together (each from its own guild) against one alone, their ratio,
and the same ratio for the decoding phase only (until the last job starts rendering), since
rendering costs the same CPU per clip however the decoding is batched. Ends with every
figure as a dict.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from pathlib import Path

from bench.machine import REPO_ROOT
from engine.api.client import ComposeRequest, EngineClient, Rendering

SEED = REPO_ROOT / "engine" / "examples" / "motif.mid"
BARS, CANDIDATES = 16, 4


async def timed_batch(
    engine: EngineClient, n: int, seed_midi: bytes, first_seed: int
) -> dict[str, float]:
    """Submit n compositions at once; wall time to the last result and to the last render."""
    started = time.perf_counter()
    decoded: list[float] = []

    def on_progress(event: object) -> None:
        if isinstance(event, Rendering):
            decoded.append(time.perf_counter() - started)

    results = await asyncio.gather(
        *(
            engine.compose(
                ComposeRequest(
                    seed_midi=seed_midi,
                    bars=BARS,
                    candidates=CANDIDATES,
                    seed=first_seed + i,
                    guild_id=i,
                ),
                on_progress=on_progress,
            )
            for i in range(n)
        )
    )
    wall = time.perf_counter() - started
    stages = {
        k: statistics.mean(r.timings.get(k, 0.0) for r in results)
        for k in ("queue", "sample", "render", "pianoroll")
    }
    return {"wall": wall, "decode_wall": max(decoded)} | {f"mean_{k}": v for k, v in stages.items()}


async def load_figures(concurrent: int, repeats: int, checkpoint: Path | None) -> dict:
    seed_midi = SEED.read_bytes()
    async with EngineClient.local(checkpoint=checkpoint) as engine:
        await timed_batch(engine, 1, seed_midi, 0)  # warm caches beyond the engine's own
        ones = [await timed_batch(engine, 1, seed_midi, 100 + r) for r in range(repeats)]
        manys = [
            await timed_batch(engine, concurrent, seed_midi, 1000 * (r + 1)) for r in range(repeats)
        ]
        stats = await engine.stats()
    one = {k: statistics.median(x[k] for x in ones) for k in ones[0]}
    many = {k: statistics.median(x[k] for x in manys) for k in manys[0]}
    return {
        "concurrent": concurrent,
        "bars": BARS,
        "candidates": CANDIDATES,
        "max_rows": stats.max_rows,
        "device": stats.device,
        "one_seconds": round(one["wall"], 3),
        "concurrent_seconds": round(many["wall"], 3),
        "ratio": round(many["wall"] / one["wall"], 2),
        "one_decode_seconds": round(one["decode_wall"], 3),
        "concurrent_decode_seconds": round(many["decode_wall"], 3),
        "decode_ratio": round(many["decode_wall"] / one["decode_wall"], 2),
        "one_stages": {k: round(v, 3) for k, v in one.items() if k.startswith("mean_")},
        "concurrent_stages": {k: round(v, 3) for k, v in many.items() if k.startswith("mean_")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrent", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200, help="decode table: steps per run")
    parser.add_argument("--no-decode-table", action="store_true")
    parser.add_argument("--checkpoint", type=Path, default=None)
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    figures: dict = {}
    if not args.no_decode_table:
        from bench.decode_speed import decode_table  # imports torch: only here
        from engine.model.device import configure_threads

        configure_threads()
        print(f"{'batch':>5} {'fused tok/s':>12} {'nn.LSTM tok/s':>14} {'ratio':>6}")
        figures["decode"] = decode_table(args.steps, args.repeats)
        for row in figures["decode"]:
            print(
                f"{row['batch']:>5} {row['fused_tokens_per_s']:>12,.0f} "
                f"{row['nn_lstm_tokens_per_s']:>14,.0f} {row['ratio']:>6.2f}"
            )
    load = asyncio.run(load_figures(args.concurrent, args.repeats, args.checkpoint))
    figures["load"] = load
    print(
        f"{CANDIDATES} candidates x {BARS} bars from {SEED.name}, median of {args.repeats}, "
        f"max_rows {load['max_rows']} on {load['device']}:"
    )
    print(
        f"  one alone      {load['one_seconds']:7.2f} s  (decoded by "
        f"{load['one_decode_seconds']:.2f} s)"
    )
    print(
        f"  {args.concurrent} at once     {load['concurrent_seconds']:7.2f} s  (decoded by "
        f"{load['concurrent_decode_seconds']:.2f} s)"
    )
    print(f"  ratio {load['ratio']:.2f} end to end, {load['decode_ratio']:.2f} for decoding")
    print(figures)


if __name__ == "__main__":
    main()
