"""The model cache: per-guild checkpoints load beside the base model and leave LRU first."""

from __future__ import annotations

import shutil

import torch

from engine.models import ModelCache
from tests.engine.test_server import CHECKPOINT


def test_models_in_use_stay_and_idle_ones_leave_least_recent_first(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    for path in (a, b):
        shutil.copy(CHECKPOINT, path)
    cache = ModelCache(CHECKPOINT, torch.device("cpu"), budget_bytes=0)
    base = cache.base.key
    try:
        model_a = cache.get(str(a)).result(timeout=60)
        model_b = cache.get(str(b)).result(timeout=60)
        assert cache.keys() == [base, str(a), str(b)]  # over budget, but both in use
        cache.release(model_a)
        assert cache.keys() == [base, str(b)]
        cache.release(model_b)
        assert cache.keys() == [base]  # the base model always stays
        assert cache.get(None).result() is cache.base

        cache.budget_bytes = 2 * cache.base.nbytes  # room for one guild model
        cache.release(cache.get(str(a)).result(timeout=60))
        cache.release(cache.get(str(b)).result(timeout=60))
        assert cache.keys() == [base, str(b)]
    finally:
        cache.close()
