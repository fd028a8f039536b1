"""The model cache: per-guild checkpoints load beside the base model and leave LRU first."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from engine.core.model_cache import ModelCache, load_model
from engine.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from engine.model.coverage import ProgramCoverage
from engine.serving.model_store import ModelStore
from tests.engine.test_server import CHECKPOINT


def test_models_in_use_stay_and_idle_ones_leave_least_recent_first(tmp_path):
    store = ModelStore(tmp_path)
    a, b = "5/a", "5/b"  # two versions of a server, by id
    for model in (a, b):
        store.path_of(model).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CHECKPOINT, store.path_of(model))
    cache = ModelCache(CHECKPOINT, torch.device("cpu"), budget_bytes=0, resolve=store.path_of)
    base = cache.base.key
    model_a = cache.acquire(a)
    model_b = cache.acquire(b)
    assert cache.keys() == [base, a, b]  # over budget, but both in use
    cache.release(model_a)
    assert cache.keys() == [base, b]
    cache.release(model_b)
    assert cache.keys() == [base]  # the base model always stays
    assert cache.acquire(None) is cache.base

    cache.budget_bytes = 2 * cache.base.nbytes  # room for one guild model
    cache.release(cache.acquire(a))
    cache.release(cache.acquire(b))
    assert cache.keys() == [base, b]


def test_a_model_loads_once_for_callers_at_once_and_a_failed_load_leaves_nothing(tmp_path):
    store = ModelStore(tmp_path)
    guild = "5/guild"
    store.folder(5).mkdir(parents=True)
    shutil.copy(CHECKPOINT, store.path_of(guild))
    cache = ModelCache(CHECKPOINT, torch.device("cpu"), budget_bytes=0, resolve=store.path_of)
    with ThreadPoolExecutor(max_workers=3) as callers:
        models = list(callers.map(lambda _: cache.acquire(guild), range(3)))
    assert models[0] is models[1] is models[2] and models[0].users == 3
    missing = "5/missing"
    for _ in range(2):  # the failure is not remembered: a later try loads again
        with pytest.raises(FileNotFoundError):
            cache.acquire(missing)
    assert cache.keys() == [cache.base.key, guild]


def test_a_loaded_model_says_which_instruments_it_learned(tmp_path):
    ckpt = load_checkpoint(CHECKPOINT)
    recorded, bare = tmp_path / "recorded.pt", tmp_path / "bare.pt"
    save_checkpoint(bare, Checkpoint(ckpt.model, ckpt.tokenizer, {"step": 1}))
    ckpt.meta = {
        "programs": ProgramCoverage(
            {0: 90_000, 65: 4_000, 33: 12}, {0: 300, 65: 20, 33: 1}
        ).to_record()
    }
    save_checkpoint(recorded, ckpt)
    coverage = load_model(recorded, torch.device("cpu")).coverage
    assert coverage is not None
    assert coverage.learned_programs() == frozenset({0, 65})
    assert coverage.notes_of(33) == 12 and not coverage.learned(-1)
    assert load_model(bare, torch.device("cpu")).coverage is None
