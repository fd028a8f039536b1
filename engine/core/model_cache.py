"""The engine's models: the base model plus per-guild versions, kept under a memory budget.

A guild's version is asked for by its id (engine.serving.model_store resolves it to a file).

A checkpoint is loaded by the thread that first asks for it: the engine core's prepare stage,
on a planner thread, so a guild whose fine-tuned model is not in memory yet never stalls the
decode batch that other guilds share. Models are evicted least recently used first, but never
while a job holds them (`acquire` / `release`), and never the base.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import torch

from engine.generation.grammar import Grammar
from engine.model.checkpoint import load_checkpoint
from engine.model.coverage import ProgramCoverage
from engine.model.lstm import LSTMLanguageModel
from engine.model.tokenizer import MidiTokenizer

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LoadedModel:
    key: str  # a version's id; the base model's checkpoint path
    model: LSTMLanguageModel
    tokenizer: MidiTokenizer
    grammar: Grammar
    nbytes: int
    # Notes per GM program the model trained on (Checkpoint.coverage); None: not recorded.
    coverage: ProgramCoverage | None = None
    # MidiTok's tokenizer is not documented thread-safe; planning and MIDI decoding run on
    # different threads, so they take turns.
    tokenizer_lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0  # jobs holding the model (guarded by the cache's lock)


def _tensor_bytes(model: LSTMLanguageModel, grammar: Grammar) -> int:
    tensors = [
        *model.parameters(),
        *model.buffers(),
        *(v for v in vars(grammar).values() if isinstance(v, torch.Tensor)),
    ]
    return sum(t.numel() * t.element_size() for t in tensors)


def load_model(path: Path, device: torch.device, key: str | None = None) -> LoadedModel:
    ckpt = load_checkpoint(path, device=device)
    grammar = Grammar.build(ckpt.tokenizer).to(device)
    return LoadedModel(
        key or str(path),
        ckpt.model,
        ckpt.tokenizer,
        grammar,
        _tensor_bytes(ckpt.model, grammar),
        coverage=ckpt.coverage,
    )


class ModelCache:
    def __init__(
        self, base: Path, device: torch.device, *, budget_bytes: int, resolve: Callable[[str], Path]
    ) -> None:
        self.device = device
        self._resolve = resolve  # a version's id -> its checkpoint
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()  # LRU order: oldest first
        self._loading: dict[str, Future[LoadedModel]] = {}
        self._waiters: dict[str, int] = {}  # callers of acquire() waiting for each load
        self.base = load_model(Path(base).resolve(), device)  # at startup, before serving
        self._loaded[self.base.key] = self.base

    def acquire(self, model: str | None) -> LoadedModel:
        """The model of version `model` (None: the base), acquired for the caller, who must
        `release` it once done. A model not in memory loads on the calling thread (the
        engine core's prepare stage, on a planner); other callers that want it meanwhile wait
        for that one load."""
        key = self.base.key if model is None else model
        with self._lock:
            if key in self._loaded:
                loaded = self._loaded[key]
                self._loaded.move_to_end(key)
                loaded.users += 1
                return loaded
            pending = self._loading.get(key)
            loads = pending is None
            if pending is None:
                pending = self._loading[key] = Future()
            # Counted now, under the lock the loader takes to publish the model, so that no
            # eviction can slip between the load and the waiters' acquiring it.
            self._waiters[key] = self._waiters.get(key, 0) + 1
        if loads:
            self._load(key, pending)
        return pending.result()

    def _load(self, key: str, done: Future[LoadedModel]) -> None:
        log.info("loading model %s", key)
        try:
            loaded = load_model(self._resolve(key), self.device, key)
        except BaseException as exc:
            with self._lock:
                self._loading.pop(key, None)
                self._waiters.pop(key, None)
            done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        with self._lock:
            self._loading.pop(key, None)
            loaded.users += self._waiters.pop(key, 0)
            self._loaded[key] = loaded
            self._evict()
        log.info("loaded model %s (%.1f MB)", key, loaded.nbytes / 1e6)
        done.set_result(loaded)

    def release(self, loaded: LoadedModel) -> None:
        with self._lock:
            loaded.users -= 1
            self._evict()

    def _evict(self) -> None:
        """Drop idle models, oldest first, until the loaded ones fit the budget."""
        total = sum(m.nbytes for m in self._loaded.values())
        for key, loaded in list(self._loaded.items()):
            if total <= self.budget_bytes:
                break
            if loaded is self.base or loaded.users > 0:
                continue
            del self._loaded[key]
            total -= loaded.nbytes
            log.info("evicted model %s (%.1f MB)", key, loaded.nbytes / 1e6)

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._loaded)
