"""`python -m engine train`: tokenizer, token streams, LSTM, n-gram baseline, shipped checkpoint.

The model trains on the training pieces as converted and their augmented copies
(engine/data/augment.py), when the data dir has copies; it is measured on the held-out pieces
as converted (the figures the README compares across models) and on their augmented copies.
By default a fixed number of steps, so that the result does not depend on how busy the
machine is; `--time-budget` fits the schedule to wall time instead, and `--init-from` goes on
from a checkpoint. `make train` runs the two stages that made engine/checkpoints/base.pt."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "checkpoints" / "base.pt"
DEFAULT_STEPS = 2400  # ~2 passes over the training pieces and their copies
AUGMENTED = "augmented"  # name of the augmented held-out copies in the record and the plot


def add_parser(commands) -> None:
    p = commands.add_parser("train", help="train the base model on the corpus")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="default: MOTIF_DATA_DIR, else ./data"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--vocab-size", type=int, default=2000)
    p.add_argument(
        "--bpe-pieces",
        type=int,
        default=0,
        metavar="N",
        help="learn the BPE merges from N training pieces picked by a stable hash of their "
        "path instead of all of them (a large collection: the merges settle long before "
        "hundreds of thousands of files; default 0: all)",
    )
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument(
        "--time-budget",
        type=float,
        default=0.0,
        help="minutes; the LR schedule follows wall time and ends on time "
        "(default 0: off, the steps decide)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--embed", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--ngram-order", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--accumulate",
        type=int,
        default=1,
        metavar="N",
        help="batches per optimiser step (gradient accumulation; a step sees "
        "batch-size x N x processes windows)",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp16", "fp32"),
        default="auto",
        help="autocast on CUDA (auto: bf16 where the GPU has it, else fp16); a CPU trains in fp32",
    )
    p.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, auto (default: MOTIF_DEVICE); under torchrun each process takes "
        "the GPU of its LOCAL_RANK",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="go on from the state the last run with this --out saved in the data dir "
        "(weights, optimiser, step, generators, best so far)",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        default=None,
        metavar="CKPT",
        help="go on from this checkpoint's weights and tokenizer (its vocabulary "
        "holds every program: a model trained on the pieces as converted "
        "learns their augmented copies' instruments without starting over); "
        "the size options are then its own",
    )
    p.set_defaults(run=run)


def _files_digest(paths: list[Path]) -> str:
    return hashlib.sha1("\n".join(map(str, paths)).encode()).hexdigest()[:10]


def _streams(data_dir: Path, tokenizer, tokenizer_path: Path) -> dict:
    """Token streams (cached in the data dir per tokenizer and file list): train (the pieces
    and their augmented copies), valid (the held-out pieces), valid-augmented (their copies)."""
    from engine.data.corpus import augmented_paths, split_paths
    from engine.training.streams import TokenStream, build_stream, stream_path

    digest = hashlib.sha1(tokenizer_path.read_bytes()).hexdigest()[:10]
    files = {
        "train": split_paths(data_dir, "train") + augmented_paths(data_dir, "train"),
        "valid": split_paths(data_dir, "valid"),
        f"valid-{AUGMENTED}": augmented_paths(data_dir, "valid"),
    }
    streams = {}
    for name, paths in files.items():
        if not paths:
            continue
        path = stream_path(data_dir, f"{digest}/{name}-{_files_digest(paths)}")
        if path.with_suffix(".npy").exists():
            streams[name] = TokenStream.load(path)
            continue
        stream = build_stream(
            paths, tokenizer, tokenizer_path, workers=os.cpu_count() or 2, desc=f"tokenize {name}"
        )
        stream.save(path)
        streams[name] = stream
    return streams


def _nll(bits_per_token: float, stream) -> dict:
    return {
        "nll_bits_per_token": round(bits_per_token, 4),
        "nll_bits_per_note": round(bits_per_token * len(stream.ids) / stream.notes, 4),
        "tokens": len(stream.ids),
        "notes": stream.notes,
        "pieces": stream.pieces,
    }


def _prepare(args: argparse.Namespace, work: Path, quiet: bool):
    """The tokenizer (trained on the training pieces, or --init-from's), its path, the
    token streams and the checkpoint to start from (or None)."""
    from engine.data.corpus import augmented_paths, corpus_dir, split_paths
    from engine.model.checkpoint import load_checkpoint
    from engine.model.tokenizer import MidiTokenizer

    bpe_files = split_paths(args.data_dir, "train") + augmented_paths(args.data_dir, "train")
    if 0 < args.bpe_pieces < len(bpe_files):
        root = corpus_dir(args.data_dir)

        def rank(path: Path) -> bytes:  # by the path in the corpus: the data dir may move
            return hashlib.sha1(str(path.relative_to(root)).encode()).digest()

        bpe_files = sorted(sorted(bpe_files, key=rank)[: args.bpe_pieces])
    tokenizer_path = work / f"tokenizer-{args.vocab_size}-{_files_digest(bpe_files)}.json"
    start = None
    if args.init_from is not None:
        start = load_checkpoint(args.init_from)
        tokenizer = start.tokenizer
        tokenizer_path = work / f"tokenizer-of-{_files_digest([args.init_from.resolve()])}.json"
        if not quiet:  # process 0 writes it; the others read it after the barrier
            tokenizer.save(tokenizer_path)
    elif tokenizer_path.exists():
        tokenizer = MidiTokenizer.load(tokenizer_path)
    else:
        print(
            f"training BPE ({args.vocab_size} ids) on {len(bpe_files):,} training pieces "
            f"and copies ..."
        )
        tokenizer = MidiTokenizer.train(bpe_files, args.vocab_size)
        tokenizer.save(tokenizer_path)
    streams = _streams(args.data_dir, tokenizer, tokenizer_path)
    return tokenizer, tokenizer_path, streams, start


def _stop_on_signals() -> dict:
    """Ctrl-C (or torchrun's SIGTERM) asks the loop to stop after its step and save."""
    flag = {"stop": False}

    def handler(signum, frame) -> None:
        if flag["stop"]:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        flag["stop"] = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return flag


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from engine.data.corpus import load_manifest
    from engine.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint, write_record
    from engine.model.coverage import count_programs
    from engine.model.device import configure_threads
    from engine.model.lstm import LSTMLanguageModel, ModelConfig
    from engine.training import distributed
    from engine.training.loop import (
        TrainConfig,
        autocast_dtype,
        evaluate_bits,
        load_train_state,
        train,
    )
    from engine.training.ngram import NGramModel
    from engine.training.plots import draw_loss_curve

    if args.bpe_pieces < 0:
        print(
            f"error: --bpe-pieces must be 0 or more (received {args.bpe_pieces})", file=sys.stderr
        )
        return 2
    if args.accumulate < 1:
        print(
            f"error: --accumulate must be 1 or more (received {args.accumulate})", file=sys.stderr
        )
        return 2
    args.data_dir = args.data_dir or args.settings.data_dir
    manifest = load_manifest(args.data_dir)
    work = args.data_dir / "training"
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / f"state-{args.out.stem}.pt"
    if args.resume and not state_path.exists():
        print(
            f"error: --resume: no training state at {state_path} (a run with --out "
            f"{args.out} saves one at its first evaluation)",
            file=sys.stderr,
        )
        return 2
    processes = distributed.join(args.device or args.settings.device)
    main = processes.main
    configure_threads(
        args.settings.threads or distributed.threads_per_process(processes), decoding=False
    )
    started = time.perf_counter()
    if not main:
        processes.barrier()  # process 0 trains the tokenizer and fills the caches first
    tokenizer, tokenizer_path, streams, start = _prepare(args, work, quiet=not main)
    if main:
        processes.barrier()
    train_stream, valid_stream = streams["train"], streams["valid"]
    augmented_valid = streams.get(f"valid-{AUGMENTED}")
    if main:
        print(
            f"tokens: train {len(train_stream.ids):,} valid {len(valid_stream.ids):,}"
            + (f" valid ({AUGMENTED}) {len(augmented_valid.ids):,}" if augmented_valid else "")
            + (f"; {processes.world_size} processes" if processes.distributed else "")
        )
    coverage = count_programs(train_stream.ids, tokenizer) if main else None

    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        lr=args.lr,
        eval_every=args.eval_every,
        seed=args.seed,
        time_budget_seconds=args.time_budget * 60 or None,
        accumulate=args.accumulate,
        precision=args.precision,
    )
    model = (
        start.model
        if start is not None
        else LSTMLanguageModel(
            ModelConfig(
                vocab_size=tokenizer.vocab_size,
                embed_dim=args.embed,
                hidden_dim=args.hidden,
                num_layers=args.layers,
            )
        )
    ).to(processes.device)
    if args.resume:
        saved = load_train_state(state_path)["model"]
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if shapes != {k: tuple(v.shape) for k, v in saved.items()}:
            print(
                f"error: --resume: the state at {state_path} is of another model size or "
                "vocabulary (give the --hidden, --embed, --layers and --vocab-size it had)",
                file=sys.stderr,
            )
            distributed.leave(processes)
            return 2
    working = work / f"best-{args.out.stem}.pt"
    bar = tqdm(total=config.steps, desc="train", unit="step", mininterval=10, disable=not main)
    if args.resume:
        bar.update(load_train_state(state_path)["step"])

    def on_step(step: int, bits: float, lr: float) -> None:
        bar.update(1)
        bar.set_postfix(bits=f"{bits:.3f}", lr=f"{lr:.1e}")

    def on_eval(step: int, bits: float, best: bool) -> None:
        bar.write(f"step {step}: held-out {bits:.4f} bits/token{' (best)' if best else ''}")
        if best:
            save_checkpoint(working, Checkpoint(model, tokenizer, {"step": step}))

    stop = _stop_on_signals()
    result = train(
        model,
        train_stream.ids,
        valid_stream.ids,
        config,
        on_step=on_step,
        on_eval=on_eval,
        should_stop=lambda: stop["stop"],
        also_evaluate={AUGMENTED: augmented_valid.ids} if augmented_valid else None,
        state_path=state_path,
        resume=args.resume,
    )
    bar.close()
    distributed.leave(processes)
    if stop["stop"]:
        if main:
            print(
                f"stopped at step {result.steps_done}; the state is in {state_path}: "
                "run the same command with --resume to go on",
                file=sys.stderr,
            )
        return 130
    if not main:
        return 0

    best = load_checkpoint(working)
    # The shipped weights are half precision: measure the model as shipped.
    best.model.half().float()
    heldout = {"plain": _nll(evaluate_bits(best.model, valid_stream.ids), valid_stream)}
    if augmented_valid:
        heldout[AUGMENTED] = _nll(evaluate_bits(best.model, augmented_valid.ids), augmented_valid)
    print("fitting the n-gram baseline ...")
    ngram = NGramModel(args.ngram_order, tokenizer.vocab_size).fit(train_stream.ids)
    baseline = {
        "order": args.ngram_order,
        "plain": _nll(ngram.bits_per_token(valid_stream.ids), valid_stream),
    }
    if augmented_valid:
        baseline[AUGMENTED] = _nll(ngram.bits_per_token(augmented_valid.ids), augmented_valid)
    augmented = manifest.get("augmented", {})
    amp = autocast_dtype(config.precision, processes.device)
    meta = {
        "data": {
            "source": manifest["source"],
            "sources": manifest.get("sources", []),
            "pieces_train": train_stream.pieces,
            "pieces_valid": valid_stream.pieces,
            "tokens_train": len(train_stream.ids),
            "tokens_valid": len(valid_stream.ids),
            "notes_valid": valid_stream.notes,
            "notes_train": train_stream.notes,
            "augmented": {
                "version": augmented.get("version"),
                "copies_per_piece": augmented.get("copies", 0),
                "copies_train": augmented.get("train", 0),
                "copies_valid": augmented.get("valid", 0),
            },
            "collections": manifest["collections"],
            "split": f"{manifest['valid_percent']}% of pieces by hash of their id "
            "(music21's; a MIDI folder's by hash of their notes; a piece's augmented copies "
            "go with it)",
        },
        "tokenizer": {
            "kind": "MidiTok REMI + BPE",
            "vocab_size": tokenizer.vocab_size,
            # Training pieces the merges were learned from (0: all of them).
            "bpe_pieces": 0 if start is not None else args.bpe_pieces,
        },
        "model": best.model.config.to_dict() | {"parameters": best.model.num_parameters()},
        # The checkpoint this run went on from, and that one's own training.
        "init_from": None
        if start is None
        else {
            "checkpoint": args.init_from.name,
            "train": start.meta.get("train"),
            "data": {
                k: start.meta.get("data", {}).get(k) for k in ("pieces_train", "tokens_train")
            },
        },
        "train": config.to_dict()
        | {
            "steps_done": result.steps_done,
            "best_step": result.best_step,
            "wall_seconds": round(result.wall_seconds, 1),
            "processes": processes.world_size,
            "device": processes.device.type,
            "autocast": str(amp).removeprefix("torch.") if amp else "off",
            "tokens_per_step": config.batch_size
            * config.seq_len
            * config.accumulate
            * processes.world_size,
            "resumed": args.resume,
        },
        "total_wall_seconds": round(time.perf_counter() - started, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores "
        f"({torch.get_num_threads()} torch threads), torch {torch.__version__}",
        # "plain": the held-out pieces as converted; "augmented": their augmented copies.
        "heldout": heldout,
        "ngram_baseline": baseline,
        # Notes and pieces per GM program (-1: drums) in the training stream: what the model
        # can write (engine.model.checkpoint.Checkpoint.coverage).
        "programs": coverage.to_record(),
        "history": result.history,
    }
    best.meta = meta
    save_checkpoint(args.out, best, half=True)
    write_record(args.out, meta)
    best.tokenizer.save(args.out.parent / "tokenizer.json")
    draw_loss_curve(
        result.history,
        args.out.with_name(args.out.stem + "-loss.png"),
        earlier=None if start is None else start.meta.get("history"),
        earlier_steps=0 if start is None else start.meta.get("train", {}).get("steps_done", 0),
    )
    print(json.dumps({k: meta[k] for k in ("heldout", "ngram_baseline", "train")}, indent=1))
    return 0
