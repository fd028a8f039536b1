"""One piano-roll PNG showing every candidate of a composition, sized for a Discord embed."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pretty_midi
import symusic
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch

WIDTH_PX, ROW_PX, DPI = 1200, 250, 100
MARGIN_PX = {"left": 62, "right": 190, "top": 12, "bottom": 42}  # the right one holds the legend
ROW_GAP = 0.1  # space between rows, as a fraction of a row's height
BACKGROUND, PANEL, INK = "#2b2d31", "#1e1f22", "#dbdee1"  # Discord's dark greys: blends in
# Tableau 10, given to programs in order of first appearance, so the few instruments of a
# composition get clearly different colours; drums keep a colour of their own.
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
           "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
DRUMS = "#f0f0f0"
SEED = "#ffffff"
MIN_BAR_SECONDS = 0.03  # drum hits often last a tick: keep them visible
DEFAULT_PITCHES = (60, 72)  # range shown when there are no notes at all

# A drawable part: (colour key: "drums" or the GM program, instrument name, note arrays).
Part = tuple[str | int, str, dict[str, np.ndarray]]


def draw_pianoroll(
    scores: Sequence[symusic.Score | bytes],
    *,
    labels: Sequence[str] | None = None,
    seed_seconds: float | None = None,
) -> bytes:
    """Draw one row per score (time in seconds, one pitch range for all) and return a PNG.

    seed_seconds shades the first seconds of every row as the seed's part. The image is
    WIDTH_PX x (ROW_PX * rows) pixels.
    """
    if not scores:
        raise ValueError("draw_pianoroll needs at least one score (received none)")
    if labels is None:
        labels = [f"Candidate {i + 1}" for i in range(len(scores))]
    if len(labels) != len(scores):
        raise ValueError(f"expected {len(scores)} labels (received {len(labels)})")
    parts = [_parts(score) for score in scores]
    colours = _colours(parts)
    notes = [n for row in parts for _, _, n in row]
    if notes:
        low = min(int(n["pitch"].min()) for n in notes) - 1
        high = max(int(n["pitch"].max()) for n in notes) + 1
    else:
        low, high = DEFAULT_PITCHES
    end = max([float((n["time"] + n["duration"]).max()) for n in notes] + [seed_seconds or 0, 1])

    rows, height = len(scores), ROW_PX * len(scores)
    fig = Figure(figsize=(WIDTH_PX / DPI, height / DPI), dpi=DPI, facecolor=BACKGROUND)
    FigureCanvasAgg(fig)  # render with Agg explicitly, without pyplot's global state
    fig.subplots_adjust(
        left=MARGIN_PX["left"] / WIDTH_PX,
        right=1 - MARGIN_PX["right"] / WIDTH_PX,
        top=1 - MARGIN_PX["top"] / height,
        bottom=MARGIN_PX["bottom"] / height,
        hspace=ROW_GAP,
    )
    axes = fig.subplots(rows, 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for ax, label, row in zip(axes, labels, parts, strict=True):
        _style(ax, label)
        if seed_seconds:
            ax.axvspan(0, seed_seconds, color=SEED, alpha=0.12, lw=0)
            ax.axvline(seed_seconds, color=SEED, alpha=0.5, lw=1)
            ax.text(seed_seconds / 2, 0.97, "seed", transform=ax.get_xaxis_transform(),
                    ha="center", va="top", color=INK, fontsize=8, alpha=0.8)  # fmt: skip
        for key, _, part_notes in row:
            ax.add_collection(_bars(part_notes, colours[key]))
    axes[0].set_xlim(0, end)
    axes[0].set_ylim(low - 0.5, high + 0.5)
    _pitch_ticks(axes[0], low, high)
    axes[-1].set_xlabel("seconds", color=INK, fontsize=9)

    names = {key: name for row in parts for key, name, _ in row}
    handles = [Patch(color=colours[key], label=name) for key, name in names.items()]
    if handles:
        fig.legend(handles=handles, loc="upper right", frameon=False, fontsize=9,
                   labelcolor=INK, bbox_to_anchor=(1.0, 1 - MARGIN_PX["top"] / height))  # fmt: skip

    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=DPI, facecolor=BACKGROUND)
    return out.getvalue()


def _parts(score: symusic.Score | bytes) -> list[Part]:
    if isinstance(score, bytes | bytearray):
        score = symusic.Score.from_midi(bytes(score), ttype="second")
    else:
        score = score.to("second")
    parts: list[Part] = []
    for track in score.tracks:
        if not track.notes:
            continue
        if track.is_drum:
            parts.append(("drums", "Drums", track.notes.numpy()))
        else:
            name = pretty_midi.program_to_instrument_name(track.program)
            parts.append((track.program, name, track.notes.numpy()))
    return parts


def _colours(parts: list[list[Part]]) -> dict[str | int, str]:
    colours: dict[str | int, str] = {"drums": DRUMS}
    for row in parts:
        for key, _, _ in row:
            if key not in colours:
                colours[key] = PALETTE[(len(colours) - 1) % len(PALETTE)]
    return colours


def _bars(notes: dict[str, np.ndarray], colour: str) -> PolyCollection:
    x0 = notes["time"].astype(np.float64)
    x1 = x0 + np.maximum(notes["duration"], MIN_BAR_SECONDS)
    y0 = notes["pitch"].astype(np.float64) - 0.4
    y1 = y0 + 0.8
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    verts = np.stack([np.stack(c, axis=1) for c in corners], axis=1)  # (notes, 4, xy)
    # A thin outline in the panel colour keeps repeated notes of one pitch apart.
    return PolyCollection(verts, facecolors=colour, edgecolors=PANEL, linewidths=0.5)


def _style(ax: Axes, label: str) -> None:
    ax.set_facecolor(PANEL)
    ax.set_ylabel(label, color=INK, fontsize=9, fontweight="bold")
    ax.tick_params(colors=INK, labelsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.grid(axis="x", color=INK, alpha=0.08)


def _pitch_ticks(ax: Axes, low: int, high: int) -> None:
    # Label the Cs (C4 = 60); a range holding fewer than two gets a label every 4 semitones.
    ticks = [p for p in range(low, high + 1) if p % 12 == 0]
    if len(ticks) < 2:
        ticks = list(range(low, high + 1, 4))
    ax.set_yticks(ticks, [pretty_midi.note_number_to_name(p) for p in ticks])
