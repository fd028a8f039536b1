"""Training plots (matplotlib's Agg canvas, no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def draw_loss_curve(
    history: list[dict], path: Path, *, earlier: list[dict] | None = None, earlier_steps: int = 0
) -> None:
    """Bits per token over the steps. `earlier`: the history of the checkpoint this run went
    on from (`engine train --init-from`), which ran `earlier_steps` steps: drawn first, with
    this run's steps counted on from there."""
    fig = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    points = [*(earlier or []), *({**h, "step": h["step"] + earlier_steps} for h in history)]
    steps = [h["step"] for h in points]
    # Markers: a short run may have a single evaluation, which a line alone would not show.
    ax.plot(
        steps,
        [h["train_bits"] for h in points],
        label="train (batch)",
        alpha=0.7,
        marker="o",
        markersize=3,
    )
    ax.plot(
        steps,
        [h["valid_bits"] for h in points],
        label="held-out",
        linewidth=2,
        marker="o",
        markersize=3,
    )
    others = sorted({k for h in points for k in h if k.startswith("valid_bits_")})
    for key in others:  # other held-out sets, e.g. the augmented copies
        have = [h for h in points if key in h]
        ax.plot(
            [h["step"] for h in have],
            [h[key] for h in have],
            linewidth=1.5,
            marker="o",
            markersize=3,
            label=f"held-out, {key.removeprefix('valid_bits_')}",
        )
    if earlier:
        ax.axvline(earlier_steps, color="grey", linestyle=":", label="went on from (--init-from)")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per token")
    ax.set_title("LSTM training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
