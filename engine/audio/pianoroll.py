"""One piano-roll PNG showing every candidate of a composition, sized for a Discord embed.

Each candidate is a row: pitched notes over bar lines and bar numbers (from the score's own
metre and tempo), its drums as ticks in a lane underneath. The seed is always in the picture:
shaded at the start of every row when the clips include it, else as a strip above the rows at
the same scale (so a candidate's density compares with the seed's at a glance). Colours are
fixed per General MIDI family (one shade per program within it), so an instrument looks the
same in every post.
"""

from __future__ import annotations

import colorsys
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pretty_midi
import symusic
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.transforms import IdentityTransform

WIDTH_PX, ROW_PX, SEED_STRIP_PX, DPI = 1200, 250, 130, 100
MARGIN_PX = {"left": 62, "right": 190, "top": 18, "bottom": 34}  # the right one holds the legend
ROW_GAP_PX = 22  # between rows
SEED_LABELS_PX = 16  # above the seed strip: its own bar numbers
DRUM_LANE_PX = {"row": 36, "seed": 24}  # kicks, snares and toms, the rest: a third each
BACKGROUND, PANEL, INK = "#2b2d31", "#1e1f22", "#dbdee1"  # Discord's dark greys: blends in
DRUM_LANE = "#27292d"
# One hue per General MIDI family (programs 8k..8k+7), told apart on a dark panel; the
# programs of a family get lighter and darker shades of it, the first one the hue itself.
FAMILY_COLOURS = (
    ("Piano", "#5b9bd5"), ("Chromatic Percussion", "#76d7ea"), ("Organ", "#a77bd6"),
    ("Guitar", "#f28e2b"), ("Bass", "#59a14f"), ("Strings", "#e15759"),
    ("Ensemble", "#e377c2"), ("Brass", "#edc948"), ("Reed", "#b5835a"),
    ("Pipe", "#5fd3b3"), ("Synth Lead", "#b6e36b"), ("Synth Pad", "#c9b3f0"),
    ("Synth Effects", "#7f8fd4"), ("Ethnic", "#d4a373"), ("Percussive", "#9aa5b1"),
    ("Sound Effects", "#6b7a8f"),
)  # fmt: skip
SHADES = (0.0, -0.07, 0.06, -0.12, 0.1, -0.04, 0.03, -0.1)  # lightness offset, program % 8
DRUMS = "#f0f0f0"
SEED = "#ffffff"
EPSILON_SECONDS = 1e-3  # symusic keeps seconds in float32: 38.4 s reads 38.4000015
MIN_NOTE_SECONDS = 0.03  # notes often last a tick: keep them visible
DEFAULT_PITCHES = (60, 72)  # range shown when there are no pitched notes at all
METRE_LABEL_PX = 100  # room for "12/8 at 110 bpm" beside a row's own bar numbers
MIN_LABEL_PX = 26  # bar numbers closer than this are thinned to every 2nd, 4th, ... bar
MAX_LEGEND_ENTRIES = 12  # beyond this the legend names families instead of instruments
LEGEND_ROW_PX = 19
# GM percussion keys by lane, bottom to top; the rest (cymbals, hi-hats, hand percussion) on top.
KICKS = (35, 36)
SNARES_AND_TOMS = (37, 38, 39, 40, 41, 43, 45, 47, 48, 50)


def _shade(colour: str, offset: float) -> str:
    hue, lightness, saturation = colorsys.rgb_to_hls(*to_rgb(colour))
    return to_hex(colorsys.hls_to_rgb(hue, min(0.92, max(0.2, lightness + offset)), saturation))


PROGRAM_COLOURS = tuple(_shade(FAMILY_COLOURS[p // 8][1], SHADES[p % 8]) for p in range(128))


def program_colour(program: int) -> str:
    """The colour of a GM program (0-127) in every piano roll."""
    return PROGRAM_COLOURS[program]


def bar_starts(score: symusic.Score, until_seconds: float) -> np.ndarray:
    """Seconds at which the score's bars start, up to `until_seconds`, following its time
    signatures (4/4 before the first) and tempo changes (120 bpm before the first)."""
    if score.ttype != symusic.core.Tick:
        score = score.to("tick")
    tpq = score.ticks_per_quarter
    signatures = score.time_signatures.numpy()
    times = signatures["time"].astype(np.int64)
    metres = list(
        zip(signatures["numerator"].tolist(), signatures["denominator"].tolist(), strict=True)
    )
    if not len(times) or times[0] > 0:
        times, metres = np.insert(times, 0, 0), [(4, 4), *metres]
    tempos = score.tempos.numpy()
    tempo_ticks, mspq = tempos["time"].astype(np.int64), tempos["mspq"].astype(np.float64)
    if not len(tempo_ticks) or tempo_ticks[0] > 0:
        tempo_ticks, mspq = np.insert(tempo_ticks, 0, 0), np.insert(mspq, 0, 500_000.0)
    seconds_per_tick = mspq / 1e6 / tpq
    tempo_seconds = np.concatenate([[0.0], np.cumsum(np.diff(tempo_ticks) * seconds_per_tick[:-1])])
    k = np.searchsorted(tempo_seconds, until_seconds, side="right") - 1
    limit = tempo_ticks[k] + (until_seconds - tempo_seconds[k]) / seconds_per_tick[k]

    starts = []
    for i, (numerator, denominator) in enumerate(metres):
        # A metre that changes mid-bar starts a bar of its own.
        stop = min(times[i + 1] if i + 1 < len(times) else np.inf, limit + 1)
        starts.append(np.arange(times[i], stop, numerator * tpq * 4 / denominator))
    ticks = np.concatenate(starts)
    segment = np.searchsorted(tempo_ticks, ticks, side="right") - 1
    seconds = tempo_seconds[segment] + (ticks - tempo_ticks[segment]) * seconds_per_tick[segment]
    return seconds[seconds <= until_seconds + EPSILON_SECONDS]


@dataclass
class _Roll:
    """One drawable score: pitched notes per program and drum hits, in seconds."""

    score: symusic.Score  # in ticks, for its bars
    pitched: list[tuple[int, dict[str, np.ndarray]]]
    drums: dict[str, np.ndarray] | None  # all drum tracks together

    @classmethod
    def of(cls, score: symusic.Score | bytes) -> _Roll:
        if isinstance(score, bytes | bytearray):
            score = symusic.Score.from_midi(bytes(score))
        elif score.ttype != symusic.core.Tick:
            score = score.to("tick")
        pitched, hits = [], []
        for track in score.to("second").tracks:
            if not track.notes:
                continue
            if track.is_drum:
                hits.append(track.notes.numpy())
            else:
                pitched.append((track.program, track.notes.numpy()))
        drums = {k: np.concatenate([h[k] for h in hits]) for k in hits[0]} if hits else None
        return cls(score, pitched, drums)

    @property
    def end(self) -> float:
        ends = [float((n["time"] + n["duration"]).max()) for _, n in self.pitched]
        if self.drums is not None:
            ends.append(float((self.drums["time"] + self.drums["duration"]).max()))
        return max(ends, default=0.0)

    def pitch_range(self) -> tuple[int, int] | None:
        if not self.pitched:
            return None
        return (
            min(int(n["pitch"].min()) for _, n in self.pitched),
            max(int(n["pitch"].max()) for _, n in self.pitched),
        )

    def metre(self) -> str:
        signatures, tempos = self.score.time_signatures, self.score.tempos
        if len(signatures) > 1 or len(tempos) > 1:
            return "metre or tempo changes"
        ts = signatures[0] if len(signatures) else None
        metre = f"{ts.numerator}/{ts.denominator}" if ts else "4/4"
        return f"{metre} at {tempos[0].qpm if len(tempos) else 120:.0f} bpm"


def draw_pianoroll(
    scores: Sequence[symusic.Score | bytes],
    *,
    labels: Sequence[str] | None = None,
    seed: symusic.Score | bytes | None = None,
    seed_seconds: float | None = None,
) -> bytes:
    """Draw one row per score (one time and pitch scale for all) and return a PNG.

    seed_seconds: the scores begin with the seed, which lasts that long; it is shaded in every
    row. Otherwise `seed`, when given, is drawn as a strip above the rows. The image is
    WIDTH_PX x (ROW_PX * rows [+ SEED_STRIP_PX]) pixels.
    """
    if not scores:
        raise ValueError("draw_pianoroll needs at least one score (received none)")
    if labels is None:
        labels = [f"Candidate {i + 1}" for i in range(len(scores))]
    if len(labels) != len(scores):
        raise ValueError(f"expected {len(scores)} labels (received {len(labels)})")
    rows = [_Roll.of(score) for score in scores]
    strip = _Roll.of(seed) if seed is not None and not seed_seconds else None
    everything = rows + ([strip] if strip else [])
    ranges = [r for roll in everything if (r := roll.pitch_range())]
    pitches = (
        (min(r[0] for r in ranges) - 1, max(r[1] for r in ranges) + 1)
        if ranges
        else DEFAULT_PITCHES
    )
    span = max([roll.end for roll in rows] + [seed_seconds or 0.0, 1.0])
    with_drums = any(roll.drums is not None for roll in everything)

    height = ROW_PX * len(rows) + (SEED_STRIP_PX if strip else 0)
    fig = Figure(figsize=(WIDTH_PX / DPI, height / DPI), dpi=DPI, facecolor=BACKGROUND)
    FigureCanvasAgg(fig)  # render with Agg explicitly, without pyplot's global state
    # One axes for everything, x in seconds and y in pixels from its bottom: each row is a
    # band of it. One axes with a few collections draws several times faster than an axes
    # per row with its own ticks.
    plot_width = WIDTH_PX - MARGIN_PX["left"] - MARGIN_PX["right"]
    plot_height = height - MARGIN_PX["top"] - MARGIN_PX["bottom"]
    ax = fig.add_axes(
        (
            MARGIN_PX["left"] / WIDTH_PX,
            MARGIN_PX["bottom"] / height,
            plot_width / WIDTH_PX,
            plot_height / height,
        )
    )
    ax.set_axis_off()
    ax.set_xlim(0, span)
    ax.set_ylim(0, plot_height)
    canvas = _Canvas(ax, span, plot_width, pitches)

    top = plot_height
    if strip:
        strip_height = SEED_STRIP_PX - SEED_LABELS_PX - ROW_GAP_PX
        # The seed's last `span` seconds (all of it, mostly): what leads into the candidates.
        start = max(0.0, strip.end - span)
        canvas.band(
            strip,
            "Seed",
            top - SEED_LABELS_PX - strip_height,
            strip_height,
            DRUM_LANE_PX["seed"] if with_drums else 0,
            start=start,
            to_end=True,
        )
        canvas.bar_numbers(strip, top - SEED_LABELS_PX + 2, start=start, below=False, to_end=True)
        top -= SEED_STRIP_PX
    row_height = (top + ROW_GAP_PX) / len(rows) - ROW_GAP_PX
    grid = canvas.bars(rows[-1], 0.0)  # numbered under the last row
    for i, (roll, label) in enumerate(zip(rows, labels, strict=True)):
        bottom = top - (i + 1) * row_height - i * ROW_GAP_PX
        canvas.band(roll, label, bottom, row_height, DRUM_LANE_PX["row"] if with_drums else 0)
        if seed_seconds:
            canvas.seed_part(seed_seconds, bottom, row_height)
        bars = canvas.bars(roll, 0.0)
        if len(bars) != len(grid) or not np.allclose(bars, grid):
            # Without a seed each candidate may pick its metre: number its own bars above it.
            canvas.bar_numbers(
                roll, bottom + row_height + 2, start=0.0, below=False, room_px=METRE_LABEL_PX
            )
            ax.text(
                span,
                bottom + row_height + 2,
                roll.metre(),
                ha="right",
                va="bottom",
                color=INK,
                fontsize=8,
            )
    canvas.bar_numbers(rows[-1], -4, start=0.0, below=True)
    ax.text(
        0.5,
        2 - MARGIN_PX["bottom"],
        f"bar ({rows[-1].metre()})",
        transform=ax.get_yaxis_transform(),
        ha="center",
        va="bottom",
        color=INK,
        fontsize=9,
    )
    canvas.finish()
    _legend(fig, everything, height)

    out = io.BytesIO()
    # zlib level 1: a flat-coloured image compresses about as well and several times faster.
    fig.savefig(out, format="png", dpi=DPI, facecolor=BACKGROUND, pil_kwargs={"compress_level": 1})
    return out.getvalue()


def _rectangles(
    x0: np.ndarray | float, y0: np.ndarray | float, x1: np.ndarray | float, y1: np.ndarray | float
) -> np.ndarray:
    """(n, 4, xy) corners of axis-aligned rectangles; scalars broadcast."""
    x0, y0, x1, y1 = np.broadcast_arrays(*(np.atleast_1d(v) for v in (x0, y0, x1, y1)))
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return np.stack([np.stack(c, axis=1) for c in corners], axis=1)


class _Canvas:
    """Collects the shapes of every band (the seed strip, the rows) on the one axes, and adds
    them as one collection per kind at the end: a few artists, whatever the number of rows."""

    def __init__(self, ax: Axes, span: float, width_px: float, pitches: tuple[int, int]) -> None:
        self.ax, self.span, self.width_px = ax, span, width_px
        self.low, self.high = pitches
        self.notes: dict[int, list[tuple[np.ndarray, float]]] = {}  # program: (verts, outline)
        self.shapes: dict[str, list[np.ndarray]] = {
            "panels": [],
            "lanes": [],
            "shading": [],
            "bars": [],
            "hits": [],
            "seams": [],
        }

    def _text(self, x: float, y: float, text: str, **style) -> None:
        self.ax.text(x, y, text, **{"color": INK, "fontsize": 8, **style})

    def band(
        self,
        roll: _Roll,
        label: str,
        bottom: float,
        height: float,
        lane: float,
        *,
        start: float = 0.0,
        to_end: bool = False,
    ) -> None:
        """Draw `roll` from `start` seconds on in the band [bottom, bottom + height] px."""
        per_pitch = (height - lane) / (self.high - self.low + 1)
        pitch_y = bottom + lane + 0.5 * per_pitch - self.low * per_pitch  # + pitch * per_pitch
        self.shapes["panels"].append(_rectangles(0.0, bottom, self.span, bottom + height))
        # A thin outline in the panel colour keeps repeated notes of one pitch apart, where
        # notes are tall enough to spare it.
        outline = 0.5 if per_pitch >= 3 else 0.0
        for program, notes in roll.pitched:
            x0 = notes["time"].astype(np.float64) - start
            x1 = x0 + np.maximum(notes["duration"], MIN_NOTE_SECONDS)
            y = pitch_y + notes["pitch"].astype(np.float64) * per_pitch
            seen = x1 > 0
            verts = _rectangles(
                x0[seen], y[seen] - 0.4 * per_pitch, x1[seen], y[seen] + 0.4 * per_pitch
            )
            self.notes.setdefault(program, []).append((verts, outline))
        labels = self.ax.get_yaxis_transform()  # x in axes fractions, y in pixels
        ticks = [p for p in range(self.low, self.high + 1) if p % 12 == 0]
        if len(ticks) < 2:  # label the Cs (C4 = 60); with fewer than two, every 4 semitones
            ticks = list(range(self.low, self.high + 1, 4))
        if per_pitch * 12 < 11:  # too tight for every C: every other one
            ticks = ticks[::2]
        for p in ticks:
            self._text(
                -0.006,
                pitch_y + p * per_pitch,
                pretty_midi.note_number_to_name(p),
                transform=labels,
                ha="right",
                va="center",
            )
        self._text(
            -0.05,
            bottom + height / 2,
            label,
            transform=labels,
            ha="center",
            va="center",
            rotation=90,
            fontsize=9,
            fontweight="bold",
        )
        if lane:
            self.shapes["lanes"].append(_rectangles(0.0, bottom, self.span, bottom + lane))
            self._text(
                -0.006,
                bottom + lane / 2,
                "drums",
                transform=labels,
                ha="right",
                va="center",
                fontsize=7,
            )
            if roll.drums is not None:
                self.shapes["hits"].append(_drum_ticks(roll.drums, start, bottom, lane))
        bars = self.bars(roll, start, to_end=to_end)
        bars = bars[bars >= start - EPSILON_SECONDS] - start
        self.shapes["bars"].append(_rectangles(bars, bottom, bars, bottom + height)[:, ::3])

    def bars(self, roll: _Roll, start: float, *, to_end: bool = False) -> np.ndarray:
        """Bar starts (seconds, the roll's own) in the window from `start`; with `to_end`
        (the seed strip) only up to the bar line that closes the roll."""
        bars = bar_starts(roll.score, start + self.span)
        if to_end:
            bars = bars[: np.searchsorted(bars, roll.end - EPSILON_SECONDS) + 1]
        return bars

    def seed_part(self, seconds: float, bottom: float, height: float) -> None:
        self.shapes["shading"].append(_rectangles(0.0, bottom, seconds, bottom + height))
        self.shapes["seams"].append(np.array([[[seconds, bottom], [seconds, bottom + height]]]))
        self._text(seconds / 2, bottom + height - 3, "seed", ha="center", va="top", alpha=0.8)

    def bar_numbers(
        self,
        roll: _Roll,
        y: float,
        *,
        start: float,
        below: bool,
        to_end: bool = False,
        room_px: float = 0.0,
    ) -> None:
        """Number the bars (1 = the score's first) along a band's edge, at the lines where they
        start, thinned to every 2nd, 4th, ... bar when they would crowd; `room_px` at the
        right end stays free."""
        bars = self.bars(roll, start, to_end=to_end) - start
        numbers = np.arange(1, len(bars) + 1)
        end = min(self.span, roll.end - start) if to_end else self.span
        end = min(end, self.span * (1 - room_px / self.width_px))
        # The closing line starts no bar: no number.
        shown = (bars >= -EPSILON_SECONDS) & (bars < end - EPSILON_SECONDS)
        if not shown.any():
            return
        per_bar = float(np.median(np.diff(bars))) if len(bars) > 1 else self.span
        every = 1
        while self.width_px * per_bar * every / self.span < MIN_LABEL_PX:
            every *= 2
        for x, number in zip(bars[shown], numbers[shown], strict=True):
            if (number - 1) % every == 0:
                self._text(x, y, str(number), ha="center", va="top" if below else "bottom")

    def finish(self) -> None:
        def polygons(key: str, **style) -> None:
            if self.shapes[key]:
                self.ax.add_collection(PolyCollection(np.concatenate(self.shapes[key]), **style))

        def lines(key: str, **style) -> None:
            if self.shapes[key]:
                self.ax.add_collection(LineCollection(np.concatenate(self.shapes[key]), **style))

        polygons("panels", facecolors=PANEL, linewidths=0, zorder=0)
        polygons("lanes", facecolors=DRUM_LANE, linewidths=0, zorder=0.5)
        polygons("shading", facecolors=SEED, alpha=0.12, linewidths=0, zorder=1)
        lines("bars", colors=INK, alpha=0.14, linewidths=0.8, zorder=1.5)
        for program, parts in sorted(self.notes.items()):
            verts = np.concatenate([v for v, _ in parts])
            widths = np.concatenate([np.full(len(v), w) for v, w in parts])
            self.ax.add_collection(
                PolyCollection(
                    verts,
                    facecolors=program_colour(program),
                    edgecolors=PANEL,
                    linewidths=widths,
                    zorder=2,
                )
            )
        # One crisp pixel a hit: sixteenth hi-hats 3-4 px apart (16 bars at 120 bpm) merged
        # into a solid bar at 1.5 points.
        lines("hits", colors=DRUMS, linewidths=72 / DPI, antialiaseds=False, zorder=2)
        lines("seams", colors=SEED, alpha=0.5, linewidths=1, zorder=3)


def _drum_ticks(
    hits: dict[str, np.ndarray], start: float, bottom: float, lane: float
) -> np.ndarray:
    """One short vertical line per hit: kicks at the bottom of the lane, snares and toms in
    the middle, cymbals and other percussion on top. Returns (hits, 2, xy) segments."""
    pitch = hits["pitch"]
    level = np.where(np.isin(pitch, KICKS), 0, np.where(np.isin(pitch, SNARES_AND_TOMS), 1, 2))
    third = lane / 3
    x = hits["time"].astype(np.float64) - start
    y0 = bottom + (level + 0.15) * third
    seen = x >= 0
    return np.stack([np.stack([x, y0], axis=1), np.stack([x, y0 + 0.7 * third], axis=1)], axis=1)[
        seen
    ]


def _legend(fig: Figure, rolls: list[_Roll], height: int) -> None:
    """In the right margin: one entry per program (families together, in GM order) and drums;
    one per family when the instruments would not fit."""
    programs = sorted({program for roll in rolls for program, _ in roll.pitched})
    drums = any(roll.drums is not None for roll in rolls)
    room = min(MAX_LEGEND_ENTRIES, (height - MARGIN_PX["top"]) // LEGEND_ROW_PX)
    entries = [(program_colour(p), pretty_midi.program_to_instrument_name(p)) for p in programs]
    if len(entries) + drums > room:
        entries = [FAMILY_COLOURS[f][::-1] for f in sorted({p // 8 for p in programs})]
    if drums:
        entries.append((DRUMS, "Drums"))
    if len(entries) > room:
        entries = [*entries[: room - 1], (BACKGROUND, f"and {len(entries) - room + 1} more")]
    x = WIDTH_PX - MARGIN_PX["right"] + 12
    squares = []
    for i, (_, name) in enumerate(entries):
        y = height - MARGIN_PX["top"] - 10 - i * LEGEND_ROW_PX  # pixels from the bottom
        squares.append(_rectangles(x, y - 5, x + 20, y + 5))
        fig.text((x + 28) / WIDTH_PX, y / height, name, color=INK, fontsize=9, va="center")
    if squares:
        fig.add_artist(
            PolyCollection(
                np.concatenate(squares),
                facecolors=[c for c, _ in entries],
                linewidths=0,
                transform=IdentityTransform(),
            )
        )
