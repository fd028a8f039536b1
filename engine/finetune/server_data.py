"""A server's fine-tuning data: its pieces split into tuning and held-out parts, as tokens.

The held-out part is chosen by a hash of each piece's bytes, so the same pieces are held out
run after run (the gate compares versions on the same music) whatever order they arrive in.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.api.errors import BadRequest, BadSeed
from engine.api.seed_midi import read_seed
from engine.model.tokenizer import MidiTokenizer

MIN_PIECES = 3  # two to learn from and one to judge by, at the very least
HELDOUT_SHARE = 0.2
MAX_PAIR_TOKENS = 512  # a preference is judged on the opening of each candidate
PAIRS_DIR = "pairs"  # in a data folder: pairs/<name>/chosen.mid and rejected*.mid


@dataclass
class ServerData:
    train: np.ndarray  # BOS piece EOS ... as one int32 stream
    heldout: np.ndarray
    train_pieces: int
    heldout_pieces: int
    heldout_notes: int
    skipped: int  # pieces that could not be read
    pairs: list[tuple[list[int], list[int]]]  # (chosen, rejected) ids, BOS first


def piece_key(midi: bytes) -> str:
    return hashlib.sha1(midi).hexdigest()


def split_pieces(
    pieces: list[bytes], share: float = HELDOUT_SHARE
) -> tuple[list[bytes], list[bytes]]:
    """(tuning, held-out): duplicates dropped, at least one piece on each side."""
    unique = sorted({piece_key(p): p for p in pieces}.items())
    if len(unique) < MIN_PIECES:
        raise BadRequest(
            f"fine-tuning needs at least {MIN_PIECES} different pieces (seeds or "
            f"winning candidates); this server has {len(unique)}"
        )
    held = max(1, math.floor(len(unique) * share))
    return [p for _, p in unique[held:]], [p for _, p in unique[:held]]


def encode_piece(tokenizer: MidiTokenizer, midi: bytes) -> tuple[list[int], int] | None:
    """BOS ids EOS and the note count, or None for a piece that cannot be read."""
    try:
        score = read_seed(midi)
    except BadSeed:
        return None
    ids = tokenizer.encode(score)
    return ([tokenizer.bos_id, *ids, tokenizer.eos_id], score.note_num()) if ids else None


def _stream(encoded: list[tuple[list[int], int]]) -> np.ndarray:
    return np.asarray([i for ids, _ in encoded for i in ids], dtype=np.int32)


def prepare(
    tokenizer: MidiTokenizer, pieces: list[bytes], pairs: list[tuple[bytes, bytes]]
) -> ServerData:
    tuning, heldout = split_pieces(pieces)
    tuned = [e for p in tuning if (e := encode_piece(tokenizer, p))]
    held = [e for p in heldout if (e := encode_piece(tokenizer, p))]
    skipped = len(tuning) + len(heldout) - len(tuned) - len(held)
    if not tuned or not held:
        raise BadRequest(
            f"only {len(tuned) + len(held)} of this server's pieces could be read; "
            f"fine-tuning needs at least {MIN_PIECES}"
        )
    encoded_pairs = []
    for chosen, rejected in pairs:
        c, r = encode_piece(tokenizer, chosen), encode_piece(tokenizer, rejected)
        if c and r:
            encoded_pairs.append((c[0][:MAX_PAIR_TOKENS], r[0][:MAX_PAIR_TOKENS]))
    return ServerData(
        train=_stream(tuned),
        heldout=_stream(held),
        train_pieces=len(tuned),
        heldout_pieces=len(held),
        heldout_notes=sum(n for _, n in held),
        skipped=skipped,
        pairs=encoded_pairs,
    )


def read_folder(folder: Path) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
    """Pieces (every MIDI file outside pairs/) and pairs (pairs/<name>/chosen.mid against
    each pairs/<name>/rejected*.mid) of a data folder."""
    folder = Path(folder)
    pieces, pairs = [], []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in (".mid", ".midi") or not path.is_file():
            continue
        if PAIRS_DIR in path.relative_to(folder).parts[:-1]:
            continue
        pieces.append(path.read_bytes())
    for chosen in sorted((folder / PAIRS_DIR).glob("*/chosen.mid")):
        for rejected in sorted(chosen.parent.glob("rejected*.mid")):
            pairs.append((chosen.read_bytes(), rejected.read_bytes()))
    return pieces, pairs
