"""Training loop for a token language model. It knows nothing about music.

Fine-tuning is the same loop started from a checkpoint with a few overrides. Progress and
evaluations are reported through callbacks, which the CLI turns into a progress bar and
checkpoint saves, and the engine server into progress messages.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from engine.training.streams import random_windows

LN2 = math.log(2)
# Draws (batch, length + 1) token windows; fine-tuning passes one that mixes streams.
WindowSampler = Callable[[int, int, np.random.Generator], np.ndarray]


@dataclass
class TrainConfig:
    steps: int = 4000
    batch_size: int = 32
    seq_len: int = 256  # long enough to span several bars of dense polyphony
    lr: float = 3e-3  # LSTMs with AdamW tolerate a high rate after a short warmup
    min_lr_ratio: float = 0.05  # cosine decay ends at lr * this
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    eval_every: int = 250
    eval_max_tokens: int = 100_000  # periodic evals on a prefix; the final one on everything
    eval_parts: int = 16  # lanes the held-out stream is cut into (1: one pass, for short ones)
    seed: int = 0
    # With a budget the schedule follows wall time, so training ends on time on a busy
    # machine too: progress = max(step / steps, elapsed / budget).
    time_budget_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive (received {getattr(self, name)})")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive (received {self.lr})")

    def progress(self, step: int, elapsed: float) -> float:
        by_steps = step / self.steps
        if self.time_budget_seconds:
            return max(by_steps, elapsed / self.time_budget_seconds)
        return by_steps

    def lr_at(self, step: int, progress: float | None = None) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if progress is None:
            progress = step / self.steps
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * cosine)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    best_valid_bits: float
    best_step: int
    steps_done: int
    wall_seconds: float
    history: list[dict] = field(default_factory=list)


@torch.no_grad()
def evaluate_bits(
    model: nn.Module,
    ids: np.ndarray,
    *,
    max_tokens: int | None = None,
    chunk: int = 512,
    parts: int = 16,
) -> float:
    """Mean bits per token over the stream, in `parts` contiguous lanes carrying state."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if max_tokens:
        ids = ids[:max_tokens]
    lane = (len(ids) - 1) // parts
    if lane < 2:
        parts, lane = 1, len(ids) - 1
    x = torch.as_tensor(ids[: parts * lane].reshape(parts, lane), dtype=torch.long)
    y = torch.as_tensor(ids[1 : parts * lane + 1].reshape(parts, lane), dtype=torch.long)
    total, count, state = 0.0, 0, None
    for start in range(0, lane, chunk):
        xb, yb = x[:, start : start + chunk].to(device), y[:, start : start + chunk].to(device)
        logits, state = model(xb, state)
        loss = nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), yb.flatten(), reduction="sum"
        )
        total += loss.item()
        count += yb.numel()
    model.train(was_training)
    return total / count / LN2


def train(
    model: nn.Module,
    train_ids: np.ndarray | WindowSampler,
    valid_ids: np.ndarray,
    config: TrainConfig,
    *,
    on_step: Callable[[int, float, float], None] | None = None,
    on_eval: Callable[[int, float, bool], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    also_evaluate: dict[str, np.ndarray] | None = None,
) -> TrainResult:
    """Train in place. on_step(step, loss_bits, lr); on_eval(step, valid_bits, is_best).

    `train_ids` is one token stream, or a sampler of windows
    (see engine.training.streams.MixedWindows).
    `valid_ids` picks the best step; each stream of `also_evaluate` is measured beside it at
    every evaluation (history: `valid_bits_<name>`), for the record only.
    """
    if isinstance(train_ids, np.ndarray):
        stream = train_ids

        def windows(batch: int, length: int, rng: np.random.Generator) -> np.ndarray:
            return random_windows(stream, batch, length, rng)
    else:
        windows = train_ids
    device = next(model.parameters()).device
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
    )
    result = TrainResult(best_valid_bits=math.inf, best_step=0, steps_done=0, wall_seconds=0.0)
    started = time.perf_counter()
    model.train()
    for step in range(config.steps):
        progress = config.progress(step, time.perf_counter() - started)
        if progress >= 1.0 or (should_stop and should_stop()):
            break
        lr = config.lr_at(step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = torch.as_tensor(
            windows(config.batch_size, config.seq_len, rng), dtype=torch.long, device=device
        )
        logits, _ = model(batch[:, :-1])
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        result.steps_done = step + 1
        if on_step:
            on_step(step + 1, loss.item() / LN2, lr)
        last = config.progress(step + 1, time.perf_counter() - started) >= 1.0
        if (step + 1) % config.eval_every == 0 or last:
            bits = evaluate_bits(
                model, valid_ids, max_tokens=config.eval_max_tokens, parts=config.eval_parts
            )
            improved = bits < result.best_valid_bits
            if improved:
                result.best_valid_bits, result.best_step = bits, step + 1
            others = {
                f"valid_bits_{name}": evaluate_bits(
                    model, ids, max_tokens=config.eval_max_tokens, parts=config.eval_parts
                )
                for name, ids in (also_evaluate or {}).items()
            }
            result.history.append(
                {
                    "step": step + 1,
                    "train_bits": loss.item() / LN2,
                    "valid_bits": bits,
                    **others,
                    "lr": lr,
                    "seconds": time.perf_counter() - started,
                }
            )
            if on_eval:
                on_eval(step + 1, bits, improved)
    result.wall_seconds = time.perf_counter() - started
    return result
