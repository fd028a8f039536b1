"""The base corpus as fine-tuning sees it: pieces to replay, and a held-out sample to check
that a server's model still knows music in general.

Both come from the corpus in the data dir. When there is none (a fresh bot), the folk part is
built first: seconds, not the minutes of the full build. The token streams are cached per
tokenizer and corpus, so only a server's first run pays for them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from symusic import Score

from engine.data.corpus import build_corpus, corpus_dir, load_manifest
from engine.finetune.defaults import DEFAULTS
from engine.model.tokenizer import MidiTokenizer

REPLAY_PIECES = DEFAULTS["replay_pieces"]
# Judging a version on the whole held-out split takes minutes on a CPU; a sample of it
# (whole pieces, in a fixed order) takes seconds.
BASE_EVAL_TOKENS = DEFAULTS["base_eval_tokens"]


@contextmanager
def _locked(path: Path):
    """One process at a time builds the corpus or a cache (two servers may start together)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_corpus(data_dir: Path, say: Callable[[str], None] = print) -> dict:
    with _locked(Path(data_dir) / "corpus.lock"):
        if not (corpus_dir(data_dir) / "manifest.json").exists():
            say(f"no corpus in {data_dir}: building the folk part for replay (once)")
            build_corpus(data_dir, scores=False)
        return load_manifest(data_dir)


def tokenizer_digest(tokenizer: MidiTokenizer) -> str:
    """Identifies the vocabulary, so caches made with another tokenizer are never mixed in."""
    vocab = json.dumps(tokenizer.remi._model.get_vocab(), sort_keys=True)
    return hashlib.sha1(vocab.encode()).hexdigest()[:10]


def _encode_until(
    tokenizer: MidiTokenizer, paths: list[Path], max_tokens: int | None
) -> np.ndarray:
    ids: list[int] = []
    for path in paths:
        try:
            piece = tokenizer.encode(Score(path))
        except Exception:  # an unreadable file is left out, as in training
            continue
        if piece:
            ids += [tokenizer.bos_id, *piece, tokenizer.eos_id]
        if max_tokens and len(ids) >= max_tokens:
            break
    return np.asarray(ids[:max_tokens] if max_tokens else ids, dtype=np.int32)


def _cached(path: Path, make: Callable[[], np.ndarray]) -> np.ndarray:
    with _locked(path.with_suffix(".lock")):
        if path.exists():
            return np.load(path)
        ids = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.npy")
        np.save(tmp, ids)
        tmp.replace(path)
        return ids


def base_streams(
    data_dir: Path,
    tokenizer: MidiTokenizer,
    *,
    replay_pieces: int = REPLAY_PIECES,
    eval_tokens: int = BASE_EVAL_TOKENS,
    say: Callable[[str], None] = print,
) -> tuple[np.ndarray, np.ndarray]:
    """(replay stream from the training split, held-out sample from the validation split)."""
    manifest = ensure_corpus(data_dir, say)
    root = corpus_dir(data_dir)
    entries = sorted(manifest["entries"], key=lambda e: e["id"])
    corpus_key = hashlib.sha1("".join(e["id"] for e in entries).encode()).hexdigest()[:10]
    cache = Path(data_dir) / "tokens" / tokenizer_digest(tokenizer) / f"finetune-{corpus_key}"

    def replay() -> np.ndarray:
        train = [root / e["path"] for e in entries if e["split"] == "train"]
        rng = np.random.default_rng(0)
        chosen = rng.choice(len(train), size=min(replay_pieces, len(train)), replace=False)
        return _encode_until(tokenizer, [train[i] for i in sorted(chosen)], None)

    def heldout() -> np.ndarray:
        valid = [root / e["path"] for e in entries if e["split"] == "valid"]
        # Spread over the collections: every 7th piece in id order, then the rest.
        ordered = valid[::7] + [p for i, p in enumerate(valid) if i % 7]
        return _encode_until(tokenizer, ordered, eval_tokens)

    return (
        _cached(cache / f"replay-{replay_pieces}.npy", replay),
        _cached(cache / f"heldout-{eval_tokens}.npy", heldout),
    )
