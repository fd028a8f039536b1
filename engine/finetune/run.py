"""One fine-tuning run: from the server's active version to a gated new checkpoint.

preparing    load the start model, the server's pieces and the base replay/held-out data
tuning       supervised steps on the server's pieces mixed with base replay, stopping
             early when the server's held-out pieces stop improving (best weights kept)
preferences  DPO on the members' votes, if there are enough; kept only if it passes the
             gate on its own, else the tuned model goes to the gate
gate         judge, save the checkpoint with its figures either way
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.finetune import base_data, server_data
from engine.finetune.defaults import DEFAULTS
from engine.finetune.gate import GateFigures, judge
from engine.finetune.preferences import PreferenceConfig, optimise_preferences
from engine.model.checkpoint import BASE_CHECKPOINT, Checkpoint, load_checkpoint, save_checkpoint
from engine.model.coverage import count_programs
from engine.training.loop import TrainConfig, evaluate_bits, train
from engine.training.streams import MixedWindows

# Share of the whole run each phase takes, for one progress figure.
PHASES = {
    "preparing": (0.0, 0.1),
    "tuning": (0.1, 0.75),
    "preferences": (0.75, 0.9),
    "gate": (0.9, 1.0),
}

Progress = Callable[[str, float], None]  # (phase, percent of the whole run)


class Cancelled(Exception):
    """should_stop said so; nothing was saved."""


@dataclass
class FinetuneConfig:
    steps: int = DEFAULTS["steps"]
    batch_size: int = DEFAULTS["batch_size"]
    seq_len: int = DEFAULTS["seq_len"]
    lr: float = DEFAULTS["lr"]
    warmup_steps: int = 10
    eval_every: int = DEFAULTS["eval_every"]
    patience: int = 3  # held-out evaluations without improvement before stopping
    server_share: float = DEFAULTS["server_share"]
    replay_pieces: int = DEFAULTS["replay_pieces"]
    base_eval_tokens: int = DEFAULTS["base_eval_tokens"]
    seed: int = 0
    preferences: PreferenceConfig = field(default_factory=PreferenceConfig)

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            steps=self.steps,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            lr=self.lr,
            warmup_steps=min(self.warmup_steps, self.steps),
            eval_every=self.eval_every,
            eval_parts=1,
            seed=self.seed,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FinetuneOutcome:
    accepted: bool
    reason: str
    checkpoint: Path
    metrics: dict


def _bits(model: torch.nn.Module, ids: np.ndarray) -> float:
    return evaluate_bits(model, ids, parts=1)


def run_finetune(
    pieces: list[bytes],
    pairs: list[tuple[bytes, bytes]],
    out: Path,
    *,
    data_dir: Path,
    start: Path | None = None,
    config: FinetuneConfig | None = None,
    device: str | torch.device = "cpu",
    progress: Progress = lambda p, f: None,
    should_stop: Callable[[], bool] = lambda: False,
    say: Callable[[str], None] = print,
) -> FinetuneOutcome:
    """Tune, gate and save to `out`. BadRequest when the data cannot be used; Cancelled."""
    config = config or FinetuneConfig()
    started = time.perf_counter()

    def report(phase: str, fraction: float) -> None:
        low, high = PHASES[phase]
        progress(phase, round(100 * (low + (high - low) * min(1.0, fraction)), 1))
        if should_stop():
            raise Cancelled()

    report("preparing", 0.0)
    start_path = Path(start) if start else BASE_CHECKPOINT
    ckpt = load_checkpoint(start_path, device=device)
    model, tokenizer = ckpt.model, ckpt.tokenizer
    data = server_data.prepare(tokenizer, pieces, pairs)
    report("preparing", 0.3)
    replay, base_heldout = base_data.base_streams(
        data_dir,
        tokenizer,
        replay_pieces=config.replay_pieces,
        eval_tokens=config.base_eval_tokens,
        say=say,
    )
    report("preparing", 0.7)
    base_model = (
        model
        if start_path == BASE_CHECKPOINT
        else load_checkpoint(BASE_CHECKPOINT, device=device).model
    )
    base_reference = _bits(base_model, base_heldout)
    del base_model
    server_before = _bits(model, data.heldout)
    say(
        f"start: {start_path.name}, server held-out {server_before:.4f} bits/token, "
        f"{data.train_pieces} pieces to learn from, {data.heldout_pieces} held out, "
        f"{len(data.pairs)} preference pairs"
    )

    best = {"bits": server_before, "step": 0, "state": copy.deepcopy(model.state_dict())}
    evals_since_best = 0

    def on_eval(step: int, bits: float, improved: bool) -> None:
        nonlocal evals_since_best
        if bits < best["bits"]:
            best.update(bits=bits, step=step, state=copy.deepcopy(model.state_dict()))
            evals_since_best = 0
        else:
            evals_since_best += 1
        say(f"step {step}: server held-out {bits:.4f} bits/token")

    tuning = train(
        model,
        MixedWindows([(data.train, config.server_share), (replay, 1 - config.server_share)]),
        data.heldout,
        config.train_config(),
        on_eval=on_eval,
        on_step=lambda step, bits, lr: report("tuning", step / config.steps),
        should_stop=lambda: should_stop() or evals_since_best >= config.patience,
    )
    if should_stop():
        raise Cancelled()
    model.load_state_dict(best["state"])
    _as_stored(model)
    metrics: dict = {
        "train_pieces": data.train_pieces,
        "heldout_pieces": data.heldout_pieces,
        "skipped_pieces": data.skipped,
        "tuning_steps": tuning.steps_done,
        "best_step": best["step"],
        "train_tokens": int(len(data.train)),
        "heldout_tokens": int(len(data.heldout)),
        "heldout_notes": data.heldout_notes,
        "preference_pairs": len(data.pairs),
        "stage": "tuning",
    }

    def figures() -> GateFigures:
        return GateFigures(
            server_before, _bits(model, data.heldout), base_reference, _bits(model, base_heldout)
        )

    if len(data.pairs) >= config.preferences.min_pairs:
        report("preferences", 0.0)
        tuned_state = copy.deepcopy(model.state_dict())
        prefs = optimise_preferences(
            model,
            data.pairs,
            tokenizer.pad_id,
            config.preferences,
            on_step=lambda step, loss: report("preferences", step / config.preferences.steps),
            should_stop=should_stop,
        )
        _as_stored(model)
        accepted, reason = judge(figures())
        metrics |= prefs | {"stage": "preferences"}
        if not accepted:
            say(f"preference step not kept: {reason}")
            metrics |= {"stage": "tuning", "preferences_rejected": reason}
            model.load_state_dict(tuned_state)
    elif data.pairs:
        metrics["preferences_skipped"] = (
            f"{len(data.pairs)} preference pairs; the preference "
            f"step needs {config.preferences.min_pairs}"
        )

    report("gate", 0.0)
    gate = figures()
    accepted, reason = judge(gate)
    metrics |= gate.to_dict() | {"wall_seconds": round(time.perf_counter() - started, 1)}
    meta = {
        "finetune": metrics | {"accepted": accepted, "reason": reason},
        "parent": str(start_path),
        "config": config.to_dict(),
    }
    if ckpt.coverage is not None:  # what the model learned: its parent's data and the server's
        meta["programs"] = ckpt.coverage.plus(count_programs(data.train, tokenizer)).to_record()
    save_checkpoint(out, Checkpoint(model, tokenizer, meta), half=True)
    report("gate", 1.0)
    return FinetuneOutcome(accepted, reason, Path(out), metrics)


def _as_stored(model: torch.nn.Module) -> None:
    """Round the weights to half precision, as they are saved, so the gate judges the model
    that will serve."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
