"""The corpus the quality sections measure on, built here when it is missing.

Always the same subset, so that a clean clone and a machine with the whole corpus measure the
same pieces: music21's folk collections (its ABC books) and Bach's chorales (polyphonic), with
the held-out split engine/data/corpus.py fixes by a hash of each piece's id. Building them takes
about a minute (`python -m engine data build --scores bach`); the other score collections
would take many more.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from engine.api.config import EngineSettings
from engine.data.corpus import build_corpus, corpus_dir, load_manifest, music21_corpus_dir

SCORE_COLLECTIONS = ("bach",)


@dataclass(frozen=True)
class Corpus:
    data_dir: Path
    collections: frozenset[str]
    entries: tuple[dict, ...]  # the manifest's entries in those collections
    built_seconds: float | None  # None when the corpus was there already

    def pieces(self, split: str) -> list[dict]:
        return [e for e in self.entries if e["split"] == split]

    def paths(self, split: str) -> list[Path]:
        return [corpus_dir(self.data_dir) / e["path"] for e in self.pieces(split)]

    def path(self, entry: dict) -> Path:
        return corpus_dir(self.data_dir) / entry["path"]

    def describe(self) -> str:
        train, valid = self.pieces("train"), self.pieces("valid")
        polyphonic = sum(is_score(e["id"]) for e in valid)
        built = (
            f"built by this run in {self.built_seconds:.0f} s"
            if self.built_seconds is not None
            else "already built"
        )
        return (
            f"Corpus: `{corpus_dir(self.data_dir)}` ({built}), restricted to music21's folk "
            f"collections and Bach's chorales: {len(train):,} training and {len(valid):,} "
            f"held-out pieces ({polyphonic} of them chorales), split by a hash of each "
            f"piece's id as in training."
        )


def is_score(piece_id: str) -> bool:
    return collection_of(piece_id) in SCORE_COLLECTIONS


def collection_of(piece_id: str) -> str:
    return piece_id.split("/")[0]


def by_hash(entry: dict) -> str:
    """A fixed order that mixes the collections (sorting by id would not)."""
    return hashlib.sha1(entry["id"].encode()).hexdigest()


def folk_collections() -> frozenset[str]:
    """The collections `engine data build` converts with abc2midi."""
    src = music21_corpus_dir()
    return frozenset(p.relative_to(src).parts[0] for p in src.rglob("*.abc"))


@functools.cache
def bench_corpus() -> Corpus:
    data_dir = EngineSettings.from_env().data_dir
    wanted = folk_collections() | set(SCORE_COLLECTIONS)
    try:
        have = set(load_manifest(data_dir)["collections"])
    except FileNotFoundError:
        have = set()
    built = None
    if not wanted <= have:
        started = time.perf_counter()
        build_corpus(data_dir, score_collections=SCORE_COLLECTIONS)
        built = time.perf_counter() - started
    entries = tuple(
        e for e in load_manifest(data_dir)["entries"] if collection_of(e["id"]) in wanted
    )
    return Corpus(data_dir, frozenset(wanted), entries, built)
