"""Training at scale, measured here: tokens/s per process with one and two processes
(DistributedDataParallel over gloo, as `torchrun --nproc_per_node 2 -m engine train` runs),
and how fast `engine data build --midi` reads a folder of MIDI files.

    .venv/bin/python -m bench.training [--quick]

- Training: the shipped model's size (2 x 512 LSTM, the shipped vocabulary) on windows of the
  example seeds tokenized by the shipped tokenizer, the engine's own loop
  (engine.training.loop.train). One process takes every core as torch threads; two processes
  take the cores between them (engine.training.distributed.threads_per_process). The first
  steps warm up and are not timed.
- Build: a folder written here of the example seeds' augmented copies (engine/data/augment.py,
  each also shifted by some beats so their notes differ), plus a few duplicates and a broken
  file; `build_corpus(midi_dirs=[folder], music21=False, copies=0)` with one and two workers
  from an empty data dir, then a rerun that reads the journal instead of the files.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.markdown import table
from bench.section import Headline, Report, Section, main

EXAMPLES = ("motif.mid", "waltz-violin.mid", "band.mid")
BATCH, SEQ = 16, 128
STEPS, WARMUP = 24, 4
QUICK_STEPS, QUICK_WARMUP = 8, 2
FILES, QUICK_FILES = 1500, 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _token_stream(tokenizer) -> np.ndarray:
    from symusic import Score

    from engine.model.checkpoint import CHECKPOINT_DIR

    examples = CHECKPOINT_DIR.parent / "examples"
    ids: list[int] = []
    for name in EXAMPLES:
        ids += [tokenizer.bos_id, *tokenizer.encode(Score(examples / name)), tokenizer.eos_id]
    return np.asarray(ids, dtype=np.int32)


def _one_process(
    rank: int, world: int, port: int, threads: int, steps: int, warmup: int, out: str
) -> None:
    """One training process (spawned): its steps' timestamps go to out/<rank>.npy."""
    import torch
    from torch import distributed as dist

    from engine.model.checkpoint import load_checkpoint
    from engine.model.lstm import LSTMLanguageModel
    from engine.training.loop import TrainConfig, train

    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(threads)
    base = load_checkpoint()
    model = LSTMLanguageModel(base.model.config)
    ids = _token_stream(base.tokenizer)
    stamps: list[float] = []
    train(
        model,
        ids,
        ids[:2000],
        TrainConfig(steps=steps, batch_size=BATCH, seq_len=SEQ, eval_every=10**6),
        on_step=lambda *_: stamps.append(time.perf_counter()),
    )
    np.save(Path(out) / f"{rank}.npy", np.asarray(stamps[warmup - 1 :]))
    if world > 1:
        dist.destroy_process_group()


def training_rates(world: int, threads: int, steps: int, warmup: int) -> list[float]:
    """Tokens/s of each process over its timed steps."""
    from torch import multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(
            _one_process,
            args=(world, _free_port(), threads, steps, warmup, tmp),
            nprocs=world,
            join=True,
        )
        rates = []
        for rank in range(world):
            stamps = np.load(Path(tmp) / f"{rank}.npy")
            rates.append((len(stamps) - 1) * BATCH * SEQ / (stamps[-1] - stamps[0]))
    return rates


def write_folder(folder: Path, files: int) -> int:
    """MIDI files made from the examples; returns how many are duplicates or broken."""
    from symusic import Score

    from engine.data.augment import augment
    from engine.model.checkpoint import CHECKPOINT_DIR

    examples = [Score(CHECKPOINT_DIR.parent / "examples" / name) for name in EXAMPLES]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        source = examples[i % len(examples)]
        score = augment(source, f"bench/{i}", i).shift_time((i // 3) * source.ticks_per_quarter)
        sub = folder / f"set{i % 7}"
        sub.mkdir(exist_ok=True)
        score.dump_midi(sub / f"piece{i}.mid")
    bad = 0
    for i in range(0, files, 50):  # a copy of every fiftieth file, and one broken file
        shutil.copy(folder / f"set{i % 7}" / f"piece{i}.mid", folder / f"copy{i}.mid")
        bad += 1
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    return bad + 1


def build_rate(folder: Path, data: Path, workers: int) -> tuple[float, dict]:
    from engine.data.corpus import build_corpus

    started = time.perf_counter()
    manifest = build_corpus(data, midi_dirs=[folder], music21=False, copies=0, workers=workers)
    seconds = time.perf_counter() - started
    return manifest["sources"][0]["files"] / seconds, manifest


def run(quick: bool) -> Report:
    steps, warmup = (QUICK_STEPS, QUICK_WARMUP) if quick else (STEPS, WARMUP)
    cores = os.cpu_count() or 1
    one = training_rates(1, cores, steps, warmup)
    single = training_rates(1, 1, steps, warmup)
    two = training_rates(2, max(1, cores // 2), steps, warmup)
    train_rows = [
        [1, f"{cores}", f"{one[0]:,.0f}", f"{one[0]:,.0f}", "1.00x"],
        [1, "1", f"{single[0]:,.0f}", f"{single[0]:,.0f}", f"{single[0] / one[0]:.2f}x"],
        [
            2,
            f"{max(1, cores // 2)} each",
            " / ".join(f"{r:,.0f}" for r in two),
            f"{sum(two):,.0f}",
            f"{sum(two) / one[0]:.2f}x",
        ],
    ]
    files = QUICK_FILES if quick else FILES
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "collection"
        bad = write_folder(folder, files)
        build_rows = []
        for workers in (1, 2):
            rate, manifest = build_rate(folder, Path(tmp) / f"data-{workers}", workers)
            build_rows.append([f"{workers} worker(s), from nothing", f"{rate:,.0f}"])
        rerun, _ = build_rate(folder, Path(tmp) / "data-2", 2)
        build_rows.append(["2 workers, rerun (the journal, no file read)", f"{rerun:,.0f}"])
        source = manifest["sources"][0]
        size = sum(p.stat().st_size for p in folder.rglob("*.mid")) / source["files"]
    markdown = "\n\n".join(
        [
            f"Training: the shipped model's size (2 x 512, its vocabulary), windows of {BATCH} x "
            f"{SEQ} tokens, AdamW; {steps - warmup} timed steps after {warmup} of warm-up, on "
            f"this machine's {cores} cores (gloo between processes, as `torchrun "
            f"--nproc_per_node 2 -m engine train` on CPUs). Each process trains on its own "
            f"windows, so the work done is the sum of the processes'.",
            table(
                ["processes", "torch threads", "tokens/s per process", "tokens/s in all", "vs 1"],
                train_rows,
            ),
            f"Build: `engine data build --midi` on a folder of {source['files']:,} files written "
            f"here (augmented copies of the example seeds, {size / 1024:.1f} KB each on average; "
            f"{bad} of them duplicates or broken), no music21, no copies. Files per second "
            f"read and judged, copied when kept, with the manifest written:",
            table(["run", "files/s"], build_rows),
            f"Kept {source['kept']:,}; left out: "
            + ", ".join(f"{n:,} {reason}" for reason, n in source["dropped"].items())
            + ". Real collections' files are larger (a pop song's multi-track MIDI is tens of "
            "KB) and cost more per file.",
        ]
    )
    return Report(
        markdown,
        [
            Headline(
                "training tokens/s, 1 process / 2 processes (each)",
                f"{one[0]:,.0f} / {' + '.join(f'{r:,.0f}' for r in two)}",
                f"1 process on 1 thread: {single[0]:,.0f}; 2 processes x 1 thread do "
                f"{sum(two) / single[0]:.2f}x of it on {cores} cores",
            ),
            Headline(
                "`data build --midi` files/s, 1 / 2 workers",
                f"{build_rows[0][1]} / {build_rows[1][1]}",
                f"rerun from the journal: {rerun:,.0f}",
            ),
        ],
    )


SECTION = Section(
    "Training at scale: processes and a MIDI folder",
    ".venv/bin/python -m bench.training",
    run,
)

if __name__ == "__main__":
    main(SECTION)
