"""The LSTM language model over MIDI token ids.

`forward` runs whole sequences through `nn.LSTM` (cuDNN on a GPU, oneDNN on a CPU) for
training and prefill. `step` advances a batch by one token with one `addmm` per layer on
weights concatenated once ([W_ih | W_hh]); on a CPU this beat calling `nn.LSTM` one token at
a time (see bench/decode_speed.py and BENCHMARKS.md), and it is the same maths on a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (L, B, H) as in nn.LSTM


@dataclass
class ModelConfig:
    vocab_size: int
    embed_dim: int = 256  # ids are few (~2k); a small embedding is plenty
    hidden_dim: int = 512  # sized so a 4-candidate step stays ~1 ms on a laptop CPU
    num_layers: int = 2  # a third layer cost 50% more per step for little NLL
    dropout: float = 0.15  # the corpus is small (~10M tokens); regularise

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embed_dim", "hidden_dim", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive (received {getattr(self, name)})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be within [0, 1) (received {self.dropout})")

    def to_dict(self) -> dict:
        return asdict(self)


class LSTMLanguageModel(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(
            config.embed_dim,
            config.hidden_dim,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_dim, config.vocab_size)
        self._fused: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    def forward(
        self, tokens: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, State]:
        x = self.drop(self.embed(tokens))  # (B, T, E)
        out, state = self.lstm(x, state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)

    def zero_state(self, batch: int, device=None, dtype=None) -> State:
        shape = (self.config.num_layers, batch, self.config.hidden_dim)
        w = self.head.weight
        z = torch.zeros(shape, device=device or w.device, dtype=dtype or w.dtype)
        return z, z.clone()

    # Weights may change (training, loading, moving): the fused copy is rebuilt on next use.
    def train(self, mode: bool = True) -> LSTMLanguageModel:
        self._fused = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._fused = None
        return super()._apply(fn, *args, **kwargs)

    def load_state_dict(self, *args, **kwargs):
        self._fused = None
        return super().load_state_dict(*args, **kwargs)

    def _fused_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._fused is None:
            layers = []
            for k in range(self.config.num_layers):
                w_ih = getattr(self.lstm, f"weight_ih_l{k}")
                w_hh = getattr(self.lstm, f"weight_hh_l{k}")
                b = getattr(self.lstm, f"bias_ih_l{k}") + getattr(self.lstm, f"bias_hh_l{k}")
                w = torch.cat([w_ih, w_hh], dim=1).t().contiguous()  # (E+H, 4H)
                layers.append((w.detach(), b.detach()))
            self._fused = layers
        return self._fused

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One decode step for a batch: tokens (B,) -> logits (B, V)."""
        h, c = state
        x = self.embed(tokens)  # (B, E)
        new_h, new_c = [], []
        for k, (w, b) in enumerate(self._fused_weights()):
            gates = torch.addmm(b, torch.cat([x, h[k]], dim=1), w)  # (B, 4H)
            i, f, g, o = gates.chunk(4, dim=1)  # PyTorch's gate order
            ck = torch.sigmoid(f) * c[k] + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(ck)  # (B, H)
            new_h.append(x)
            new_c.append(ck)
        return self.head(x), (torch.stack(new_h), torch.stack(new_c))

    @torch.no_grad()
    def step_reference(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """The same step through nn.LSTM: the baseline the benchmark compares against."""
        out, state = self.lstm(self.embed(tokens)[:, None], state)  # (B, 1, H)
        return self.head(out[:, 0]), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
