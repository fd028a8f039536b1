"""An n-gram baseline on the same tokens: interpolated absolute discounting, vectorised.

The LSTM has to beat this to earn its place. N-grams are packed into int64 keys (11-12 bits
per id), counted with np.unique and looked up with searchsorted, so a few million tokens
train in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DISCOUNT = 0.75  # the usual absolute discount for counts of one and two


@dataclass
class _Order:
    keys: np.ndarray  # sorted packed n-grams
    counts: np.ndarray
    ctx_keys: np.ndarray  # sorted packed contexts (n-1 ids)
    ctx_counts: np.ndarray  # times the context was followed by anything
    ctx_types: np.ndarray  # distinct ids that followed it


def _pack(ids: np.ndarray, n: int, bits: int) -> np.ndarray:
    """Keys of every n-gram ending at positions n-1.. of ids."""
    key = np.zeros(len(ids) - n + 1, dtype=np.int64)
    for k in range(n):
        key = (key << bits) | ids[k : len(ids) - n + 1 + k].astype(np.int64)
    return key


def _lookup(sorted_keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(sorted_keys, query).clip(max=len(sorted_keys) - 1)
    found = sorted_keys[idx] == query
    return np.where(found, values[idx], 0)


class NGramModel:
    def __init__(self, order: int, vocab_size: int) -> None:
        if not 1 <= order <= 5:
            raise ValueError(f"order must be within 1 and 5 (received {order})")
        self.order, self.vocab_size = order, vocab_size
        self.bits = max(1, math.ceil(math.log2(vocab_size)))
        self.orders: list[_Order] = []
        self.unigram = np.ones(vocab_size)

    def fit(self, ids: np.ndarray) -> NGramModel:
        ids = ids.astype(np.int64)
        self.unigram = np.bincount(ids, minlength=self.vocab_size) + 1.0
        self.unigram /= self.unigram.sum()
        for n in range(2, self.order + 1):
            keys, counts = np.unique(_pack(ids, n, self.bits), return_counts=True)
            ctx = keys >> self.bits
            ctx_keys, first = np.unique(ctx, return_index=True)
            ctx_counts = np.add.reduceat(counts, first)
            ctx_types = np.diff(np.append(first, len(keys)))
            self.orders.append(_Order(keys, counts, ctx_keys, ctx_counts, ctx_types))
        return self

    def probabilities(self, ids: np.ndarray) -> np.ndarray:
        """P(ids[t] | ids[t-order+1:t]) for t >= 1 (position 0 has no context)."""
        ids = ids.astype(np.int64)
        targets = ids[1:]
        prob = self.unigram[targets]
        for n, table in enumerate(self.orders, start=2):
            # n-grams ending at t need t >= n-1; earlier positions keep the lower order.
            keys = _pack(ids, n, self.bits)  # one per t = n-1 .. len-1
            c_hw = _lookup(table.keys, table.counts, keys).astype(float)
            ctx = keys >> self.bits
            c_h = _lookup(table.ctx_keys, table.ctx_counts, ctx).astype(float)
            types = _lookup(table.ctx_keys, table.ctx_types, ctx).astype(float)
            lower = prob[n - 2 :]
            seen = c_h > 0
            with np.errstate(divide="ignore", invalid="ignore"):
                mixed = (np.maximum(c_hw - DISCOUNT, 0) + DISCOUNT * types * lower) / c_h
            prob = np.concatenate([prob[: n - 2], np.where(seen, mixed, lower)])
        return prob

    def bits_per_token(self, ids: np.ndarray) -> float:
        return float(-np.log2(self.probabilities(ids)).mean())
