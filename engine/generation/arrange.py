"""Who plays what in a continuation, and the parts the model does not write.

The model writes the parts it learned (the seed's own programs where it knows them). A part it
cannot write, drums above all, is not dropped: it goes on from the seed's own material, bar
by bar on the continuation's bar lines, the way a band's drummer and bassist keep their groove
while the melody moves. Pitched parts choose, each bar, the seed bar whose pitch classes fit
what the model wrote there, so a bass line follows the new harmony; drums close each phrase
with a fill made of the seed's own drums. When the model knows none of the seed's pitched
instruments, it writes for the keyboard and its notes are handed to the seed's instruments by
register (a monophonic part takes one line). Pure numpy and symusic: no torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from symusic import Note, Score, Track

from engine.generation.seed_profile import DRUMS, Part, SeedProfile

# A repeating part is matched on bars this far back: one-, two-, four- and eight-bar loops.
LOOP_PERIODS = (1, 2, 4, 8)
# Two bars of a part are "the same" when this share of their notes match (onset and pitch).
SAME_BAR = 0.8
PHRASE_BARS = 4  # drums mark the end of every phrase this long with a fill
# A part the seed plays in this share of its bars is an accompaniment that should not fall
# silent: a bar where the model left it out is filled from the seed.
STEADY_SHARE = 0.75
# A pitched part keeps its loop order unless another seed bar fits the new harmony this much
# better (cosine of pitch-class weights): loops should move only when the music does.
HARMONY_MARGIN = 0.15
VELOCITY_JITTER = 4  # +- on copied notes, so a loop does not sound pasted
SNARES_AND_TOMS = frozenset({37, 38, 39, 40, 41, 43, 45, 47, 48, 50})
KEYBOARD = 0  # what the model writes when it knows none of the seed's pitched instruments


@dataclass(frozen=True)
class Arrangement:
    """Which parts the model writes and which come from elsewhere."""

    written: frozenset[int]  # programs the sampler may use; empty: any (no seed, no choice)
    continued: tuple[Part, ...]  # go on from the seed's own material
    voiced: tuple[Part, ...]  # take the model's notes by register

    @property
    def model_writes(self) -> bool:
        """False for a seed of drums only: every part is continued from the seed."""
        return bool(self.written) or not self.continued


def plan_arrangement(
    profile: SeedProfile | None, known: frozenset[int], instrument: int | None = None
) -> Arrangement:
    """Who plays what. `known`: the programs the model learned to write; `instrument`: the
    member's choice for the new notes (it replaces the seed's pitched parts, the drums and the
    parts the model cannot write play on)."""
    if profile is None:
        return Arrangement(frozenset({instrument} if instrument is not None else ()), (), ())
    pitched = profile.pitched
    drums = (profile.drums,) if profile.drums is not None else ()
    writable = tuple(p for p in pitched if p.program in known)
    unknown = tuple(p for p in pitched if p.program not in known)
    if instrument is not None:
        return Arrangement(frozenset({instrument}), (*unknown, *drums), ())
    if writable:
        return Arrangement(frozenset(p.program for p in writable), (*unknown, *drums), ())
    if unknown:
        return Arrangement(frozenset({KEYBOARD}), drums, unknown)
    return Arrangement(frozenset(), drums, ())  # drums only: nothing for the model to write


# Continuing parts from the seed's material.


@dataclass(frozen=True)
class BarGrid:
    """Where the continuation's bars are, in the output's ticks."""

    start: int  # tick of the continuation's first bar line
    bar_ticks: int
    bars: int
    # Ticks of the seed's last bar the continuation goes on in, before `start`
    # (engine.generation.prompt.Seam); 0 when it starts on a bar line.
    lead: int = 0

    @property
    def seam(self) -> int:
        """Where the continuation starts: its own notes are those from here on."""
        return self.start - self.lead

    def line(self, bar: int) -> int:
        return self.start + bar * self.bar_ticks

    @property
    def end(self) -> int:
        return self.line(self.bars)


def continue_parts(
    output: Score,
    seed: Score,
    profile: SeedProfile,
    parts: Iterable[Part],
    grid: BarGrid,
    rng: np.random.Generator,
    *,
    gaps_only: bool = False,
) -> None:
    """Add to `output` a track per part, going on from the seed's last bars. With
    `gaps_only`, a part the output already plays only fills the bars where it is silent, and
    only if the seed plays it steadily (an accompaniment; a melody may rest)."""
    seed = (
        seed
        if seed.ticks_per_quarter == output.ticks_per_quarter
        else seed.resample(output.ticks_per_quarter, min_dur=1)
    )
    seed_bars = _seed_bars(seed, profile, grid.bar_ticks)
    # The seed's unfinished last bar is no bar to loop: the continuation finishes it (the
    # `lead`), playing it as the loop's next bar would, and its bars follow the loop on. A
    # steady part the model left silent there is filled there too, like any other gap.
    lead = grid.lead if len(seed_bars) > 1 else 0
    if lead:
        seed_bars = seed_bars[:-1]
    written = _bar_pitch_classes(output, grid)
    if lead:
        written = np.concatenate([np.zeros((1, 12)), written])
    for part in parts:
        bars = [_bar_notes(seed, part.program, start, grid.bar_ticks) for start in seed_bars]
        if not any(len(b) for b in bars):
            continue
        playing = _bars_played(output, part.program, grid) if gaps_only else set()
        lead_silent = not (
            gaps_only and _plays_between(output, part.program, grid.seam, grid.start)
        )
        if gaps_only and sum(len(b) > 0 for b in bars) < STEADY_SHARE * len(bars):
            continue
        track = Track(
            _name(seed, part.program), 0 if part.is_drums else part.program, part.is_drums
        )
        rows = []
        # A gap in a part the model writes keeps the seed's loop order: matching the harmony
        # there would echo the model's own drift back at it (a pad filled from the seed's
        # dominant bar in every gap pulled whole continuations into the dominant's key).
        sources = _sources(
            bars, np.zeros_like(written) if gaps_only else written, part, grid.bars + bool(lead)
        )
        if lead:
            notes = bars[sources.pop(0)]
            notes = notes[notes[:, 0] >= grid.bar_ticks - lead]
            if lead_silent:
                rows.append(_shifted(notes, grid.start - grid.bar_ticks, rng))
        for bar, source in enumerate(sources):
            if bar in playing:
                continue
            notes = bars[source]
            if part.is_drums and _ends_phrase(len(bars) + bool(lead) + bar, grid.bars - bar):
                notes = _with_fill(notes, bars, grid.bar_ticks, profile, rng)
            rows.append(_shifted(notes, grid.line(bar), rng))
        if not rows:
            continue
        _set_notes(track, np.concatenate(rows), grid.end)
        if track.notes:
            output.tracks.append(track)


def _plays_between(output: Score, program: int, start: int, end: int) -> bool:
    """Whether `output` has a note of `program` starting in [start, end)."""
    for track in output.tracks:
        if (DRUMS if track.is_drum else track.program) != program or not track.note_num():
            continue
        time = track.notes.numpy()["time"]
        if ((time >= start) & (time < end)).any():
            return True
    return False


def _bars_played(output: Score, program: int, grid: BarGrid) -> set[int]:
    """The continuation bars in which `output` has notes of `program`."""
    played: set[int] = set()
    for track in output.tracks:
        if (DRUMS if track.is_drum else track.program) != program or not track.note_num():
            continue
        bar = (track.notes.numpy()["time"].astype(np.int64) - grid.start) // grid.bar_ticks
        played.update(int(b) for b in bar[(bar >= 0) & (bar < grid.bars)])
    return played


def _seed_bars(seed: Score, profile: SeedProfile, bar_ticks: int) -> list[int]:
    """Starts of the seed's bars in its final metre (the ones a loop may come from)."""
    starts = []
    end = seed.end()
    signatures = sorted(seed.time_signatures, key=lambda ts: ts.time)
    tick, length = 0, seed.ticks_per_quarter * 4  # 4/4 until a signature says otherwise
    while tick < end:
        for ts in signatures:
            if ts.time <= tick:
                length = seed.ticks_per_quarter * 4 * ts.numerator // ts.denominator
        if length == bar_ticks:
            starts.append(tick)
        tick += length
    return starts[-max(LOOP_PERIODS) * 2 :] or [max(0, end - bar_ticks)]


def _bar_notes(seed: Score, program: int, start: int, bar_ticks: int) -> np.ndarray:
    """The part's notes that start in the bar, as rows (offset, duration, pitch, velocity)."""
    rows = []
    for track in seed.tracks:
        if (DRUMS if track.is_drum else track.program) != program or not track.note_num():
            continue
        n = track.notes.numpy()
        inside = (n["time"] >= start) & (n["time"] < start + bar_ticks)
        rows.append(
            np.stack(
                [
                    n["time"][inside] - start,
                    n["duration"][inside],
                    n["pitch"][inside],
                    n["velocity"][inside],
                ],
                axis=1,
            )
        )
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 4), np.int64)


def _sources(bars: list[np.ndarray], written: np.ndarray, part: Part, count: int) -> list[int]:
    """For each continuation bar, the seed bar it plays: the loop goes on where the seed
    stopped; a pitched part moves to another seed bar when that fits the new harmony."""
    period = _loop_period(bars)
    loop = [len(bars) - period + (len(bars) + i) % period for i in range(count)]
    if part.is_drums:
        return loop
    classes = np.stack([_pitch_class_weights(b) for b in bars])  # (seed bars, 12)
    chosen = []
    for i, default in enumerate(loop):
        target = written[i]
        if not target.any():
            chosen.append(default)
            continue
        fit = classes @ target / (np.linalg.norm(classes, axis=1) * np.linalg.norm(target) + 1e-9)
        best = int(np.argmax(fit))
        chosen.append(best if fit[best] > fit[default] + HARMONY_MARGIN else default)
    return chosen


def _loop_period(bars: list[np.ndarray]) -> int:
    """The shortest period over which the seed's last bars repeat (or as many as there are,
    up to a phrase)."""
    for period in LOOP_PERIODS:
        pairs = [(bars[i], bars[i - period]) for i in range(period, len(bars))]
        if pairs and all(_same(a, b) for a, b in pairs):
            return period
    return min(len(bars), PHRASE_BARS)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    ka, kb = {(int(r[0]), int(r[2])) for r in a}, {(int(r[0]), int(r[2])) for r in b}
    if not ka and not kb:
        return True
    return len(ka & kb) / max(len(ka), len(kb)) >= SAME_BAR


def _pitch_class_weights(rows: np.ndarray) -> np.ndarray:
    return np.bincount(rows[:, 2] % 12, weights=rows[:, 1], minlength=12).astype(np.float64)


def _bar_pitch_classes(output: Score, grid: BarGrid) -> np.ndarray:
    """(bars, 12) duration-weighted pitch classes the model wrote in each continuation bar."""
    weights = np.zeros((grid.bars, 12))
    for track in output.tracks:
        if track.is_drum or not track.note_num():
            continue
        n = track.notes.numpy()
        bar = (n["time"].astype(np.int64) - grid.start) // grid.bar_ticks
        ok = (bar >= 0) & (bar < grid.bars)
        np.add.at(
            weights,
            (bar[ok], n["pitch"][ok].astype(np.int64) % 12),
            n["duration"][ok].astype(np.float64),
        )
    return weights


def _ends_phrase(bar_number: int, bars_left: int) -> bool:
    return bar_number % PHRASE_BARS == PHRASE_BARS - 1 or bars_left == 1


def _with_fill(
    notes: np.ndarray,
    bars: list[np.ndarray],
    bar_ticks: int,
    profile: SeedProfile,
    rng: np.random.Generator,
) -> np.ndarray:
    """The bar with its last beat replaced by a fill on the seed's own snares and toms."""
    beat = bar_ticks // max(1, profile.numerator)
    everything = np.concatenate(bars)
    drums = [p for p in np.unique(everything[:, 2]) if int(p) in SNARES_AND_TOMS]
    if not drums or beat < 4:
        return notes
    keep = notes[notes[:, 0] < bar_ticks - beat]
    hits = 4 if profile.denominator == 4 else 3  # sixteenths, or eighths of a compound beat
    step = beat // hits
    pitches = sorted(drums, reverse=True)  # high toms to low: a fill falls
    low, high = profile.drums.velocity_low, profile.drums.velocity_high  # type: ignore[union-attr]
    fill = np.array(
        [
            [
                bar_ticks - beat + i * step,
                max(1, step // 2),
                pitches[(i + int(rng.integers(0, 2))) % len(pitches)],
                low + (high - low) * (i + 1) // hits,
            ]
            for i in range(hits)
        ],
        dtype=np.int64,
    )
    return np.concatenate([keep, fill])


def _shifted(rows: np.ndarray, start: int, rng: np.random.Generator) -> np.ndarray:
    out = rows.copy()
    out[:, 0] += start
    if len(out):
        jitter = rng.integers(-VELOCITY_JITTER, VELOCITY_JITTER + 1, size=len(out))
        out[:, 3] = np.clip(out[:, 3] + jitter, 1, 127)
    return out


def _set_notes(track: Track, rows: np.ndarray, end: int) -> None:
    """Notes from rows (time, duration, pitch, velocity), cut at `end`."""
    rows = rows[rows[:, 0] < end]
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    duration = np.minimum(rows[:, 1], end - rows[:, 0]).clip(min=1)
    track.notes = Note.from_numpy(
        rows[:, 0].astype(np.int32),
        duration.astype(np.int32),
        rows[:, 2].astype(np.int8),
        rows[:, 3].astype(np.int8),
        "tick",
    )


def _name(seed: Score, program: int) -> str:
    for track in seed.tracks:
        if (DRUMS if track.is_drum else track.program) == program and track.name:
            return track.name
    return "Drums" if program == DRUMS else f"Program {program}"


# Handing the model's notes to the seed's instruments.


def voice_by_register(output: Score, parts: Sequence[Part], *, start: int = 0) -> None:
    """Move the pitched notes written from `start` on into one track per part, each note to
    the part whose register holds it (the nearest, an octave shifted if it lies outside every
    part's range); a monophonic part keeps one line (its top, or for the lowest part its
    bottom)."""
    if not parts:
        return
    rows, keep = [], []
    for track in output.tracks:
        if track.is_drum or not track.note_num():
            keep.append(track)
            continue
        n = track.notes.numpy()
        after = n["time"] >= start
        rows.append(
            np.stack(
                [n[k][after] for k in ("time", "duration", "pitch", "velocity")], axis=1
            ).astype(np.int64)
        )
        if not after.all():  # the seed's own notes (include_seed) stay where they are
            before = track.copy()
            before.notes = before.notes.filter(lambda note: note.time < start)
            keep.append(before)
    output.tracks = keep
    if not rows:
        return
    notes = np.concatenate(rows)
    lows = np.array([p.low for p in parts])
    highs = np.array([p.high for p in parts])
    distance = np.maximum(lows[None, :] - notes[:, 2:3], 0) + np.maximum(
        notes[:, 2:3] - highs[None, :], 0
    )  # (notes, parts)
    owner = np.argmin(distance, axis=1)
    bottom = int(np.argmin(lows))
    for index, part in enumerate(parts):
        mine = notes[owner == index].copy()
        mine[:, 2] = _into_range(mine[:, 2], part.low, part.high)
        if part.monophonic:
            mine = _one_line(mine, lowest=index == bottom and len(parts) > 1)
        if len(mine):
            track = Track(f"Program {part.program}", part.program, False)
            _set_notes(track, mine, int(mine[:, 0].max() + mine[:, 1].max()))
            output.tracks.append(track)


def _into_range(pitch: np.ndarray, low: int, high: int) -> np.ndarray:
    """Octave-shift pitches toward [low, high] (those inside stay)."""
    out = pitch.copy()
    below, above = out < low, out > high
    out[below] += 12 * np.ceil((low - out[below]) / 12).astype(np.int64)
    out[above] -= 12 * np.ceil((out[above] - high) / 12).astype(np.int64)
    return out.clip(0, 127)


def _one_line(rows: np.ndarray, *, lowest: bool) -> np.ndarray:
    """One note per onset (the top one, or the bottom one), each held at most until the next."""
    if not len(rows):
        return rows
    order = np.lexsort((rows[:, 2] if lowest else -rows[:, 2], rows[:, 0]))
    rows = rows[order]
    first = np.concatenate([[True], rows[1:, 0] != rows[:-1, 0]])
    rows = rows[first]
    gaps = np.append(rows[1:, 0] - rows[:-1, 0], rows[-1, 1])
    rows[:, 1] = np.minimum(rows[:, 1], gaps)
    return rows


def keep_one_line(output: Score, programs: set[int], *, start: int = 0) -> None:
    """The tracks of monophonic instruments play one note at a time from `start` on (a sax
    cannot play the chords a model may give it): the top note of each onset, each held at
    most until the next."""
    for track in output.tracks:
        if track.is_drum or track.program not in programs or not track.note_num():
            continue
        n = track.notes.numpy()
        rows = np.stack([n[k] for k in ("time", "duration", "pitch", "velocity")], axis=1).astype(
            np.int64
        )
        after = rows[:, 0] >= start
        line = _one_line(rows[after], lowest=False)
        kept = np.concatenate([rows[~after], line])
        _set_notes(track, kept, int((kept[:, 0] + kept[:, 1]).max()))


# A written part may stray this far outside the seed's range for it before it is moved back by
# octaves: room for a line to climb, not for a sax to growl two octaves below its seed.
REGISTER_SLACK = 5


def keep_in_register(output: Score, parts: Sequence[Part], *, start: int = 0) -> None:
    """Notes of the seed's pitched instruments from `start` on that lie far outside what the
    seed plays on them are moved by octaves into that range (per program: the union of its
    parts' ranges, widened by REGISTER_SLACK)."""
    ranges: dict[int, tuple[int, int]] = {}
    for part in parts:
        low, high = ranges.get(part.program, (part.low, part.high))
        ranges[part.program] = (min(low, part.low), max(high, part.high))
    for track in output.tracks:
        if track.is_drum or track.program not in ranges or not track.note_num():
            continue
        low, high = ranges[track.program]
        n = track.notes.numpy()
        rows = np.stack([n[k] for k in ("time", "duration", "pitch", "velocity")], axis=1).astype(
            np.int64
        )
        after = rows[:, 0] >= start
        rows[after, 2] = _into_range(
            rows[after, 2], max(0, low - REGISTER_SLACK), min(127, high + REGISTER_SLACK)
        )
        _set_notes(track, rows, int((rows[:, 0] + rows[:, 1]).max()))
