"""Training plots (matplotlib's Agg canvas, no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def draw_loss_curve(history: list[dict], path: Path) -> None:
    fig = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["train_bits"] for h in history], label="train (batch)", alpha=0.7)
    ax.plot(steps, [h["valid_bits"] for h in history], label="held-out", linewidth=2)
    for key in history[0] if history else ():
        if key.startswith("valid_bits_"):  # other held-out sets, e.g. the augmented copies
            ax.plot(steps, [h[key] for h in history], linewidth=1.5,
                    label=f"held-out, {key.removeprefix('valid_bits_')}")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per token")
    ax.set_title("LSTM training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
