"""Token streams for training and evaluation.

Each piece becomes `BOS ids... EOS`; a split is all its pieces end to end in one int32 array,
cached in the data dir beside a count of notes (for bits per note). Training draws random
windows from the stream; evaluation walks it once, carrying the LSTM state across chunks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from symusic import Score
from tqdm import tqdm

from engine.model.tokenizer import MidiTokenizer

_worker_tokenizer: MidiTokenizer | None = None


@dataclass
class TokenStream:
    ids: np.ndarray  # (N,) int32, pieces separated by BOS ... EOS
    notes: int  # notes in the pieces, for bits per note
    pieces: int

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".npy"), self.ids)
        path.with_suffix(".json").write_text(
            json.dumps({"notes": self.notes, "pieces": self.pieces, "tokens": len(self.ids)})
        )

    @classmethod
    def load(cls, path: Path) -> TokenStream:
        info = json.loads(path.with_suffix(".json").read_text())
        return cls(np.load(path.with_suffix(".npy")), info["notes"], info["pieces"])


def _init_worker(tokenizer_path: str) -> None:
    global _worker_tokenizer
    _worker_tokenizer = MidiTokenizer.load(Path(tokenizer_path))


def _encode_file(path: str) -> tuple[list[int], int]:
    assert _worker_tokenizer is not None
    try:
        score = Score(path)
        return _worker_tokenizer.encode(score), score.note_num()
    except Exception:  # a file the tokenizer cannot read is left out, not fatal
        return [], 0


def build_stream(
    paths: Sequence[Path],
    tokenizer: MidiTokenizer,
    tokenizer_path: Path,
    *,
    workers: int = 2,
    desc: str = "tokenize",
) -> TokenStream:
    chunks: list[np.ndarray] = []
    notes = pieces = 0
    with ProcessPoolExecutor(
        workers, initializer=_init_worker, initargs=(str(tokenizer_path),)
    ) as pool:
        results = pool.map(_encode_file, [str(p) for p in paths], chunksize=32)
        for ids, n in tqdm(results, total=len(paths), desc=desc, unit="piece"):
            if not ids:
                continue
            chunks.append(np.asarray([tokenizer.bos_id, *ids, tokenizer.eos_id], np.int32))
            notes += n
            pieces += 1
    return TokenStream(np.concatenate(chunks), notes, pieces)


def stream_path(data_dir: Path, split: str) -> Path:
    return Path(data_dir) / "tokens" / split


def random_windows(
    ids: np.ndarray, batch: int, length: int, rng: np.random.Generator
) -> np.ndarray:
    """(batch, length + 1) windows: inputs are [:, :-1], targets [:, 1:]."""
    if len(ids) < length + 2:
        # A small server's pieces may be shorter than one window: repeat them end to end.
        ids = np.tile(ids, -(-(length + 2) // len(ids)))
    starts = rng.integers(0, len(ids) - length - 1, size=batch)
    return np.stack([ids[s : s + length + 1] for s in starts])


class MixedWindows:
    """Windows drawn from several streams in fixed shares: fine-tuning mixes a server's
    pieces with replay of the base corpus, so a small server does not teach the model to
    copy its seeds."""

    def __init__(self, streams: Sequence[tuple[np.ndarray, float]]) -> None:
        total = sum(share for _, share in streams)
        if not streams or total <= 0:
            raise ValueError("MixedWindows needs at least one stream with a positive share")
        self._streams = [(ids, share / total) for ids, share in streams if share > 0]

    def __call__(self, batch: int, length: int, rng: np.random.Generator) -> np.ndarray:
        counts = [round(batch * share) for _, share in self._streams]
        counts[0] += batch - sum(counts)  # rounding leftovers go to the first stream
        parts = [
            random_windows(ids, n, length, rng)
            for (ids, _), n in zip(self._streams, counts, strict=True)
            if n > 0
        ]
        return np.concatenate(parts)
