"""A tiny real training run lowers the held-out loss; the n-gram baseline is sane."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.model.lstm import LSTMLanguageModel, ModelConfig
from engine.training.loop import TrainConfig, evaluate_bits, train
from engine.training.ngram import NGramModel


def _stream(base_checkpoint, examples) -> np.ndarray:
    from symusic import Score

    tok = base_checkpoint.tokenizer
    pieces = []
    for name in ("motif.mid", "waltz-violin.mid", "band.mid"):
        pieces += [tok.bos_id, *tok.encode(Score(examples / name)), tok.eos_id]
    return np.asarray(pieces * 20, dtype=np.int32)


def test_tiny_training_run_lowers_the_loss(base_checkpoint, examples):
    ids = _stream(base_checkpoint, examples)
    torch.manual_seed(0)
    model = LSTMLanguageModel(
        ModelConfig(
            vocab_size=base_checkpoint.tokenizer.vocab_size,
            embed_dim=32,
            hidden_dim=64,
            dropout=0.0,
        )
    )
    before = evaluate_bits(model, ids)
    evals = []
    result = train(
        model,
        ids,
        ids,
        TrainConfig(steps=60, batch_size=8, seq_len=32, lr=1e-2, warmup_steps=5, eval_every=30),
        on_eval=lambda step, bits, best: evals.append((step, bits, best)),
    )
    after = evaluate_bits(model, ids)
    assert result.steps_done == 60
    assert [e[0] for e in evals] == [30, 60]
    assert after < before - 3.0, (before, after)
    assert result.best_valid_bits == min(e[1] for e in evals)


def test_other_held_out_sets_are_measured_beside_the_one_that_picks_the_best(
    base_checkpoint, examples
):
    ids = _stream(base_checkpoint, examples)
    other = ids[::-1].copy()
    model = LSTMLanguageModel(
        ModelConfig(vocab_size=base_checkpoint.tokenizer.vocab_size, embed_dim=16, hidden_dim=16)
    )
    result = train(
        model,
        ids,
        ids,
        TrainConfig(steps=4, batch_size=2, seq_len=16, eval_every=2),
        also_evaluate={"augmented": other},
    )
    assert [h["step"] for h in result.history] == [2, 4]
    for h in result.history:
        assert h["valid_bits_augmented"] > 0
        assert h["valid_bits_augmented"] != h["valid_bits"]


def test_should_stop_ends_training_early(base_checkpoint, examples):
    ids = _stream(base_checkpoint, examples)
    model = LSTMLanguageModel(
        ModelConfig(vocab_size=base_checkpoint.tokenizer.vocab_size, embed_dim=8, hidden_dim=8)
    )
    calls = []
    result = train(
        model,
        ids,
        ids,
        TrainConfig(steps=50, batch_size=2, seq_len=8),
        on_step=lambda *a: calls.append(a),
        should_stop=lambda: len(calls) >= 5,
    )
    assert result.steps_done == 5


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert cfg.lr_at(0) == pytest.approx(1e-4)
    assert cfg.lr_at(10) == pytest.approx(1e-3, rel=0.05)  # decay has begun
    assert cfg.lr_at(99) == pytest.approx(1e-4, rel=0.05)
    budget = TrainConfig(steps=1000, time_budget_seconds=100)
    assert budget.progress(10, 50.0) == pytest.approx(0.5)


def test_ngram_learns_a_repeating_pattern_and_normalises():
    ids = np.tile(np.array([1, 5, 6, 7, 8, 2], dtype=np.int32), 200)
    model = NGramModel(3, vocab_size=10).fit(ids)
    assert model.bits_per_token(ids) < 0.5  # predictable after two tokens of context
    probs = [model.probabilities(np.array([5, 6, w]))[-1] for w in range(10)]
    assert sum(probs) == pytest.approx(1.0, abs=1e-6)
    uniform_bits = np.log2(10)
    shuffled = np.random.default_rng(0).integers(0, 10, 500).astype(np.int32)
    assert model.bits_per_token(shuffled) > uniform_bits - 0.5
