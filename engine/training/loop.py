"""Training loop for a token language model. It knows nothing about music.

Fine-tuning is the same loop started from a checkpoint with a few overrides. Progress and
evaluations are reported through callbacks, which the CLI turns into a progress bar and
checkpoint saves, and the engine server into progress messages.

Under torch.distributed (`torchrun`, engine/training/distributed.py) the model is wrapped in
DistributedDataParallel: every process draws its own windows (its own generator), gradients
are averaged, and process 0 alone evaluates and reports. On CUDA the forward pass runs under
autocast (bf16 where the GPU has it, else fp16 with a gradient scaler). A step may add up the
gradients of several batches (`accumulate`). With a `state_path`, everything needed to go on
(weights, optimiser, scaler, step, clock, best so far, history, every process's generators:
the data position) is saved at each evaluation and when stopped, and `resume` starts there.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import distributed as dist
from torch import nn

from engine.training.streams import random_windows

LN2 = math.log(2)
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
STATE_FORMAT = "motif-train-state/1"
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
    accumulate: int = 1  # batches whose gradients one optimiser step adds up
    # Autocast on CUDA: "auto" (bf16 where supported, else fp16), "bf16", "fp16" or "fp32"
    # (off). A CPU always trains in fp32.
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)} (received {self.precision!r})"
            )
        for name in ("steps", "batch_size", "seq_len", "eval_every", "accumulate"):
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


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype the forward pass runs in under autocast (None: fp32, no autocast)."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def _world() -> tuple[int, int]:
    """(rank, world size): (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _rng_state(rng: np.random.Generator, device: torch.device) -> dict:
    state = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(rng: np.random.Generator, state: dict, device: torch.device) -> None:
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def load_train_state(path: Path) -> dict:
    """A state `train` saved (a clear error when there is none or it is not one)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no training state to resume at {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a training state ({STATE_FORMAT})")
    return state


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
    state_path: Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train in place. on_step(step, loss_bits, lr); on_eval(step, valid_bits, is_best).

    `train_ids` is one token stream, or a sampler of windows
    (see engine.training.streams.MixedWindows).
    `valid_ids` picks the best step; each stream of `also_evaluate` is measured beside it at
    every evaluation (history: `valid_bits_<name>`), for the record only.
    `state_path`: where the state to go on from is saved (by process 0) at each evaluation
    and when stopped; `resume`: start from the one there.
    Under torch.distributed every process calls this alike; on_eval runs on process 0 only,
    and the result's evaluations (best, history) are process 0's.
    """
    if isinstance(train_ids, np.ndarray):
        stream = train_ids

        def windows(batch: int, length: int, rng: np.random.Generator) -> np.ndarray:
            return random_windows(stream, batch, length, rng)
    else:
        windows = train_ids
    rank, world = _world()
    device = next(model.parameters()).device
    torch.manual_seed(config.seed + rank)
    rng = np.random.default_rng([config.seed, rank] if world > 1 else config.seed)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
    )
    amp_dtype = autocast_dtype(config.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    result = TrainResult(best_valid_bits=math.inf, best_step=0, steps_done=0, wall_seconds=0.0)
    first_step, elapsed_before = 0, 0.0
    if resume:
        if state_path is None:
            raise ValueError("resume needs the state_path to resume from")
        state = load_train_state(state_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        first_step, elapsed_before = state["step"], state["elapsed"]
        result.best_valid_bits, result.best_step = state["best_valid_bits"], state["best_step"]
        result.history, result.steps_done = state["history"], state["step"]
        if len(state["rng"]) == world:
            _set_rng_state(rng, state["rng"][rank], device)
        else:  # another number of processes: fresh generators, drawn on from this step
            torch.manual_seed(config.seed + rank + 7919 * first_step)
            rng = np.random.default_rng([config.seed, rank, first_step])
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # Process 0's weights are broadcast to the others here.
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def save_state(step: int, elapsed: float) -> None:
        rngs = [_rng_state(rng, device)]
        if world > 1:
            rngs = [None] * world
            dist.all_gather_object(rngs, _rng_state(rng, device))
        if rank != 0 or state_path is None:
            return
        payload = {
            "format": STATE_FORMAT,
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "best_valid_bits": result.best_valid_bits,
            "best_step": result.best_step,
            "history": result.history,
            "rng": rngs,
            "world_size": world,
            "config": config.to_dict(),
        }
        Path(state_path).parent.mkdir(parents=True, exist_ok=True)
        part = Path(f"{state_path}.part")
        torch.save(payload, part)
        os.replace(part, state_path)  # a crash never leaves half a state

    def agreed(flag: bool) -> bool:
        """True on every process when it is on any (they all stop at the same step)."""
        if world == 1:
            return flag
        t = torch.tensor([float(flag)], device=device if device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    started = time.perf_counter() - elapsed_before
    net.train()
    step = first_step
    for step in range(first_step, config.steps):
        progress = config.progress(step, time.perf_counter() - started)
        if agreed(progress >= 1.0 or bool(should_stop and should_stop())):
            if step > first_step:
                save_state(step, time.perf_counter() - started)
            break
        lr = config.lr_at(step, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for micro in range(config.accumulate):
            batch = torch.as_tensor(
                windows(config.batch_size, config.seq_len, rng), dtype=torch.long, device=device
            )
            # Gradients are averaged across processes on the last batch of a step only.
            sync = world == 1 or micro == config.accumulate - 1
            with (
                contextlib.nullcontext() if sync else net.no_sync(),
                torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None),
            ):
                logits, _ = net(batch[:, :-1])
                loss = nn.functional.cross_entropy(
                    logits.flatten(0, 1).float(), batch[:, 1:].flatten()
                )
                scaler.scale(loss / config.accumulate).backward()
            loss_sum += loss.item()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        train_bits = loss_sum / config.accumulate / LN2
        result.steps_done = step + 1
        if on_step:
            on_step(step + 1, train_bits, lr)
        last = config.progress(step + 1, time.perf_counter() - started) >= 1.0
        if (step + 1) % config.eval_every == 0 or last:
            if rank == 0:
                _evaluate(model, valid_ids, also_evaluate, config, result, step, train_bits, lr)
                result.history[-1]["seconds"] = time.perf_counter() - started
                if on_eval:
                    h = result.history[-1]
                    on_eval(step + 1, h["valid_bits"], result.best_step == step + 1)
            save_state(step + 1, time.perf_counter() - started)
    result.wall_seconds = time.perf_counter() - started
    return result


def _evaluate(
    model: nn.Module,
    valid_ids: np.ndarray,
    also_evaluate: dict[str, np.ndarray] | None,
    config: TrainConfig,
    result: TrainResult,
    step: int,
    train_bits: float,
    lr: float,
) -> None:
    """One periodic evaluation, into the result's history and best."""
    bits = evaluate_bits(
        model, valid_ids, max_tokens=config.eval_max_tokens, parts=config.eval_parts
    )
    if bits < result.best_valid_bits:
        result.best_valid_bits, result.best_step = bits, step + 1
    others = {
        f"valid_bits_{name}": evaluate_bits(
            model, ids, max_tokens=config.eval_max_tokens, parts=config.eval_parts
        )
        for name, ids in (also_evaluate or {}).items()
    }
    result.history.append(
        {"step": step + 1, "train_bits": train_bits, "valid_bits": bits, **others, "lr": lr}
    )
