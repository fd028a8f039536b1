"""The LSTM: the fused single step is the same maths as nn.LSTM."""

from __future__ import annotations

import pytest
import torch

from engine.model.lstm import LSTMLanguageModel, ModelConfig


def test_fused_step_matches_forward():
    torch.manual_seed(0)
    model = LSTMLanguageModel(
        ModelConfig(vocab_size=50, embed_dim=16, hidden_dim=32, num_layers=2)
    ).eval()
    tokens = torch.randint(0, 50, (3, 7))
    full, _ = model(tokens)  # (3, 7, 50)
    state = model.zero_state(3)
    for t in range(7):
        logits, state = model.step(tokens[:, t], state)
        torch.testing.assert_close(logits, full[:, t], rtol=1e-4, atol=1e-5)


def test_fused_weights_follow_loaded_weights():
    model = LSTMLanguageModel(ModelConfig(vocab_size=20, embed_dim=8, hidden_dim=8)).eval()
    state = model.zero_state(1)
    before, _ = model.step(torch.tensor([3]), state)
    other = LSTMLanguageModel(ModelConfig(vocab_size=20, embed_dim=8, hidden_dim=8))
    model.load_state_dict(other.state_dict())
    after, _ = model.step(torch.tensor([3]), state)
    expected, _ = other.eval().step(torch.tensor([3]), state)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected)


def test_reference_step_matches_fused(base_checkpoint):
    model = base_checkpoint.model
    state = model.zero_state(4)
    tokens = torch.tensor([1, 5, 9, 13])
    a, (ha, ca) = model.step(tokens, state)
    b, (hb, cb) = model.step_reference(tokens, state)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ca, cb, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("field,value", [("hidden_dim", 0), ("dropout", 1.0)])
def test_config_rejects_bad_values_with_the_value(field, value):
    kwargs = {"vocab_size": 10, field: value}
    with pytest.raises(ValueError, match=str(value)):
        ModelConfig(**kwargs)
