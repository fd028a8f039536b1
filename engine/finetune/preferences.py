"""Direct preference optimisation (Rafailov et al., 2023) on the members' votes.

Each pair is (the candidate members voted for, another candidate of the same composition).
The model moves so that, relative to a frozen reference (the model as tuning left it), it
gives the chosen candidate more probability than the rejected one. Only a few dozen steps at
a small rate: the votes are few and noisy, and the gate still has the last word.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from engine.finetune.defaults import DEFAULTS


@dataclass
class PreferenceConfig:
    steps: int = 40
    pairs_per_step: int = 4
    lr: float = 5e-5
    beta: float = 0.1  # how far from the reference the votes may pull the model
    min_pairs: int = DEFAULTS["min_pairs"]
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def sequence_logps(model: nn.Module, sequences: list[list[int]], pad_id: int) -> torch.Tensor:
    """Sum of log p(token | the tokens before it) of each sequence (BOS first)."""
    device = next(model.parameters()).device
    length = max(len(s) for s in sequences)
    batch = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    for row, seq in enumerate(sequences):
        batch[row, : len(seq)] = torch.as_tensor(seq)
    batch = batch.to(device)
    logits, _ = model(batch[:, :-1])
    logps = torch.log_softmax(logits.float(), dim=-1)
    targets = batch[:, 1:]
    picked = logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    mask = (
        torch.arange(length - 1, device=device)[None, :]
        < torch.as_tensor([len(s) - 1 for s in sequences], device=device)[:, None]
    )
    return (picked * mask).sum(dim=1)


@torch.no_grad()
def _all_logps(
    model: nn.Module, pairs: list[tuple[list[int], list[int]]], pad_id: int, chunk: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    chosen, rejected = [], []
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        chosen.append(sequence_logps(model, [c for c, _ in part], pad_id))
        rejected.append(sequence_logps(model, [r for _, r in part], pad_id))
    return torch.cat(chosen), torch.cat(rejected)


def preference_accuracy(
    model: nn.Module, pairs: list[tuple[list[int], list[int]]], pad_id: int
) -> float:
    """Share of pairs where the model finds the chosen candidate likelier per token."""
    was_training = model.training
    model.eval()
    chosen, rejected = _all_logps(model, pairs, pad_id)
    model.train(was_training)
    lengths = torch.as_tensor([[len(c) - 1, len(r) - 1] for c, r in pairs], dtype=torch.float)
    return float(((chosen / lengths[:, 0]) > (rejected / lengths[:, 1])).float().mean())


def optimise_preferences(
    model: nn.Module,
    pairs: list[tuple[list[int], list[int]]],
    pad_id: int,
    config: PreferenceConfig,
    *,
    on_step: Callable[[int, float], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """DPO in place; returns its figures (loss, accuracies before and after)."""
    reference = copy.deepcopy(model).eval()
    ref_chosen, ref_rejected = _all_logps(reference, pairs, pad_id)
    del reference
    accuracy_before = preference_accuracy(model, pairs, pad_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    rng = np.random.default_rng(config.seed)
    model.train()
    losses, steps = [], 0
    for step in range(config.steps):
        if should_stop and should_stop():
            break
        picked = rng.choice(len(pairs), size=min(config.pairs_per_step, len(pairs)), replace=False)
        part = [pairs[i] for i in picked]
        chosen = sequence_logps(model, [c for c, _ in part], pad_id)
        rejected = sequence_logps(model, [r for _, r in part], pad_id)
        index = torch.as_tensor(picked)
        margin = (chosen - ref_chosen[index]) - (rejected - ref_rejected[index])
        loss = -nn.functional.logsigmoid(config.beta * margin).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        steps = step + 1
        if on_step:
            on_step(steps, loss.item())
    model.eval()
    return {
        "preference_steps": steps,
        "preference_pairs": len(pairs),
        "preference_loss_first": round(losses[0], 4) if losses else None,
        "preference_loss_last": round(losses[-1], 4) if losses else None,
        "preference_accuracy_before": round(accuracy_before, 4),
        "preference_accuracy_after": round(preference_accuracy(model, pairs, pad_id), 4),
    }
