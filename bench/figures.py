"""Small PNG plots for BENCHMARKS.md (matplotlib's Agg canvas, no pyplot global state)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIGURES_DIR = Path(__file__).resolve().parent / "figures"
DPI = 80  # small files: they are committed beside BENCHMARKS.md


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Figure, name: str, alt: str) -> str:
    """Write bench/figures/<name>.png; returns the markdown that shows it in BENCHMARKS.md."""
    FIGURES_DIR.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(FIGURES_DIR / f"{name}.png")
    return f"![{alt}](bench/figures/{name}.png)"
