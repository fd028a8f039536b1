"""`python -m engine eval --checkpoint CKPT --data DIR [--json]`: held-out NLL on MIDI files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(commands) -> None:
    p = commands.add_parser("eval", help="NLL of a checkpoint on the MIDI files in a folder")
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--data", type=Path, required=True, help="folder of .mid/.midi files")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    import numpy as np
    from symusic import Score

    from engine.model.checkpoint import BASE_CHECKPOINT, load_checkpoint
    from engine.model.device import configure_threads, pick_device
    from engine.training.loop import evaluate_bits

    files = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        print(f"error: no MIDI files in {args.data}", file=sys.stderr)
        return 2
    configure_threads(args.settings.threads, decoding=False)
    ckpt = load_checkpoint(
        args.checkpoint or BASE_CHECKPOINT, device=pick_device(args.settings.device)
    )
    tok = ckpt.tokenizer
    ids, notes, skipped = [], 0, 0
    for path in files:
        try:
            score = Score(path)
        except Exception:
            skipped += 1
            continue
        piece = tok.encode(score)
        if piece:
            ids += [tok.bos_id, *piece, tok.eos_id]
            notes += score.note_num()
    if not ids:
        print(f"error: none of the {len(files)} files in {args.data} has notes", file=sys.stderr)
        return 2
    stream = np.asarray(ids, dtype=np.int32)
    bits = evaluate_bits(ckpt.model, stream, parts=1)
    result = {
        "nll_bits_per_token": round(bits, 4),
        "nll_bits_per_note": round(bits * (len(stream) - 1) / max(1, notes), 4),
        "tokens": len(stream),
        "notes": notes,
        "files": len(files) - skipped,
        "skipped_files": skipped,
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0
