"""Musical statistics of a stretch of MIDI, to compare generated music with real music.

The features follow Yang & Lerch (2018), "On the evaluation of generative models in music",
and the metrics of C-RNN-GAN (scale consistency) and MuseGAN (empty beats). They are computed
per segment on its pitched notes (drum tracks are left out), and two sets of segments are
compared by the overlapping area of each feature's kernel density estimate. Keys are found
with the Krumhansl-Schmuckler algorithm on the Krumhansl-Kessler profiles.

What a continuation keeps of its seed (its instruments, drums, scale, groove, bars, dynamics)
is measured bar by bar on every note, drums included (`BarNotes` and the functions after it).

Pure numpy and symusic (no torch), so anything may import it. Times are in quarter notes
("beats" below), whatever the MIDI resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from symusic import Score

PITCH_CLASSES = 12
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)  # natural minor scales are the relative majors' sets
# Krumhansl & Kessler (1982): how well each pitch class fits a major / minor key on its tonic.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
DRUMS = 128  # the "program" of a drum track in `instruments`
KDE_POINTS = 2048
MIDI_DEFAULT_TEMPO, MIDI_DEFAULT_METRE = 120.0, "4/4"  # what a file without them plays at
TEMPO_TOLERANCE = 1.0  # bpm: MIDI stores microseconds per beat, so tempos round a little
# Onsets are placed on a grid of twelfths of a beat: sixteenths (3 steps) and eighth-note
# triplets (4 steps) both fall on it, so straight and swung grooves keep their shape.
STEPS_PER_BEAT = 12
# A bar matches another when this share of its (onset, pitch) pairs, and of the other's, match.
BAR_MATCH_SHARE = 0.8
LOUD_VELOCITY = 120  # notes this loud or louder are the model's overshoot, rarely a seed's

# Feature name -> what a table or a plot calls it.
FEATURES = {
    "pitch_class_entropy": "pitch-class entropy (bits)",
    "scale_consistency": "scale consistency",
    "polyphony": "polyphony (notes sounding)",
    "empty_beat_rate": "empty-beat rate",
    "pitch_range": "pitch range (semitones)",
    "notes_per_bar": "notes per bar",
}


@dataclass(frozen=True)
class Notes:
    """The pitched notes of a score as arrays, times in beats from the score's start."""

    onset: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray

    @classmethod
    def of(cls, score: Score) -> Notes:
        tpq = score.ticks_per_quarter
        arrays = [t.notes.numpy() for t in score.tracks if not t.is_drum and t.note_num()]
        if not arrays:
            empty = np.zeros(0)
            return cls(empty, empty, np.zeros(0, dtype=np.int64))
        return cls(
            onset=np.concatenate([a["time"] for a in arrays]) / tpq,
            duration=np.concatenate([a["duration"] for a in arrays]) / tpq,
            pitch=np.concatenate([a["pitch"] for a in arrays]).astype(np.int64),  # int8 in symusic
        )

    def __len__(self) -> int:
        return len(self.pitch)


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class, 0 = C
    minor: bool

    def __str__(self) -> str:
        return f"{NAMES[self.tonic]} {'minor' if self.minor else 'major'}"

    @property
    def signature(self) -> int:
        """Tonic of the major key with the same key signature (a minor key's relative major):
        profile correlations often mistake a key for its relative on a few bars."""
        return (self.tonic + 3) % PITCH_CLASSES if self.minor else self.tonic

    @property
    def scale(self) -> frozenset[int]:
        """Pitch classes of the key signature's diatonic scale (a minor key: natural minor)."""
        return frozenset((self.signature + step) % PITCH_CLASSES for step in MAJOR_SCALE)


def pitch_class_histogram(notes: Notes, *, by_duration: bool = False) -> np.ndarray:
    """Share of notes (or of sounding time) on each pitch class; zeros when there are none."""
    weights = notes.duration if by_duration else None
    counts = np.bincount(notes.pitch % PITCH_CLASSES, weights=weights, minlength=PITCH_CLASSES)
    total = counts.sum()
    return counts / total if total > 0 else counts.astype(float)


def pitch_class_entropy(notes: Notes) -> float:
    """Shannon entropy of the pitch-class histogram in bits: 0 for one pitch class,
    log2(12) = 3.58 when all twelve are equally used."""
    p = pitch_class_histogram(notes)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def scale_consistency(notes: Notes) -> float:
    """Largest share of notes that fall in one major (or its relative natural minor) scale."""
    if not len(notes):
        return 0.0
    counts = np.bincount(notes.pitch % PITCH_CLASSES, minlength=PITCH_CLASSES)
    in_scale = max(
        int(counts[[(tonic + d) % PITCH_CLASSES for d in MAJOR_SCALE]].sum())
        for tonic in range(PITCH_CLASSES)
    )
    return in_scale / len(notes)


def in_scale_share(notes: Notes, key: Key) -> float | None:
    """Share of the notes whose pitch class is in `key`'s scale; None without notes."""
    if not len(notes):
        return None
    return float(np.isin(notes.pitch % PITCH_CLASSES, sorted(key.scale)).mean())


def pitch_class_distance(a: Notes, b: Notes) -> float:
    """L1 distance between the two pitch-class histograms (shares of notes): 0 for the same
    mix of pitch classes, 2 for disjoint ones. A side without notes shares nothing: 2."""
    if not len(a) or not len(b):
        return 2.0
    return float(np.abs(pitch_class_histogram(a) - pitch_class_histogram(b)).sum())


def key_correlations(notes: Notes) -> dict[Key, float]:
    """Krumhansl-Schmuckler: how well each of the 24 keys' profiles correlates with the
    duration-weighted pitch-class histogram; empty without notes or with all twelve classes
    equally long."""
    histogram = pitch_class_histogram(notes, by_duration=True)
    if not histogram.any() or np.ptp(histogram) == 0:
        return {}
    return {
        Key(tonic, minor): float(np.corrcoef(histogram, np.roll(profile, tonic))[0, 1])
        for minor, profile in ((False, MAJOR_PROFILE), (True, MINOR_PROFILE))
        for tonic in range(PITCH_CLASSES)
    }


def find_key(notes: Notes) -> Key | None:
    """The key whose profile correlates best (Krumhansl-Schmuckler); None without notes or
    with all twelve classes equally long."""
    correlations = key_correlations(notes)
    return max(correlations, key=correlations.__getitem__) if correlations else None


def polyphony(notes: Notes) -> float:
    """Mean number of notes sounding, over the time when at least one sounds."""
    if not len(notes):
        return 0.0
    times = np.concatenate([notes.onset, notes.onset + notes.duration])
    change = np.concatenate([np.ones(len(notes)), -np.ones(len(notes))])
    order = np.lexsort((change, times))  # at one instant, note-offs before note-ons
    sounding = np.cumsum(change[order])[:-1]
    spans = np.diff(times[order])
    audible = spans[sounding > 0].sum()
    return float((sounding * spans).sum() / audible) if audible > 0 else 0.0


def empty_beat_rate(notes: Notes, beats: float) -> float:
    """Share of the segment's beats (quarter notes from 0 to `beats`) in which nothing sounds."""
    count = math.ceil(beats)
    if count <= 0:
        return 0.0
    start = np.floor(notes.onset).astype(np.int64).clip(0, count)
    stop = np.maximum(np.ceil(notes.onset + notes.duration).astype(np.int64), start + 1)
    edges = np.zeros(count + 1, dtype=np.int64)
    np.add.at(edges, start, 1)
    np.add.at(edges, stop.clip(0, count), -1)
    covered = np.cumsum(edges[:-1]) > 0
    return float(1.0 - covered.mean())


def pitch_range(notes: Notes) -> int:
    return int(np.ptp(notes.pitch)) if len(notes) else 0


def notes_per_bar(notes: Notes, bars: int) -> float:
    return len(notes) / bars


def features(score: Score, *, bars: int, beats: float) -> dict[str, float]:
    """Every feature of FEATURES for a segment `bars` long (`beats` quarter notes)."""
    notes = Notes.of(score)
    return {
        "pitch_class_entropy": pitch_class_entropy(notes),
        "scale_consistency": scale_consistency(notes),
        "polyphony": polyphony(notes),
        "empty_beat_rate": empty_beat_rate(notes, beats),
        "pitch_range": float(pitch_range(notes)),
        "notes_per_bar": notes_per_bar(notes, bars),
    }


# Segments: bars follow the score's time signatures (4/4 before the first one).


def bar_lines(score: Score, bars: int) -> list[int]:
    """Ticks of the first `bars` + 1 bar lines; a time signature takes effect at the next one."""
    signatures = sorted((ts.time, ts.numerator, ts.denominator) for ts in score.time_signatures)
    lines, tick = [], 0
    numerator, denominator = 4, 4
    for _ in range(bars + 1):
        lines.append(tick)
        for time, num, den in signatures:
            if time <= tick:
                numerator, denominator = num, den
        tick += score.ticks_per_quarter * 4 * numerator // denominator
    return lines


def segment(score: Score, first_bar: int, bars: int) -> tuple[Score, float]:
    """Bars [first_bar, first_bar + bars) moved to start at 0, notes cut at the segment's end;
    and its length in beats."""
    lines = bar_lines(score, first_bar + bars)
    start, end = lines[first_bar], lines[-1]
    # symusic's clip_end drops the notes that sound past the end: keep them, shortened.
    clipped = score.clip(start, end).shift_time(-start)
    for track in clipped.tracks:
        for note in track.notes:
            note.duration = min(note.duration, end - start - note.time)
    return clipped, (end - start) / score.ticks_per_quarter


# Facts a continuation may keep from its seed.


def instruments(score: Score) -> frozenset[int]:
    """GM programs of the tracks that play (DRUMS for drum tracks)."""
    return frozenset(DRUMS if t.is_drum else t.program for t in score.tracks if t.note_num())


def tempo_at(score: Score, tick: int) -> float | None:
    """Quarter notes per minute in force at `tick`."""
    before = [t for t in score.tempos if t.time <= tick]
    return float(before[-1].qpm) if before else None


def time_signature_at(score: Score, tick: int) -> str | None:
    before = [t for t in score.time_signatures if t.time <= tick]
    return f"{before[-1].numerator}/{before[-1].denominator}" if before else None


# Fact -> what a table calls it.
CONSISTENCY = {
    "key": "key (Krumhansl-Schmuckler)",
    "key_signature": "key signature (the key or its relative)",
    "tempo": "tempo",
    "metre": "metre",
    "instruments": "instruments (only the seed's)",
}


def seed_consistency(seed: Score, continuation: Score) -> dict[str, bool | None]:
    """Whether `continuation` keeps each fact of CONSISTENCY as it stands at the seed's end:
    the same key, tempo and metre throughout, and no instrument the seed does not have.
    The key facts are None (not counted) when the seed has no key."""
    end = seed.end()
    tempo = tempo_at(seed, end) or MIDI_DEFAULT_TEMPO
    tempos = [t.qpm for t in continuation.tempos] or [MIDI_DEFAULT_TEMPO]
    metres = {f"{t.numerator}/{t.denominator}" for t in continuation.time_signatures}
    seed_key, key = find_key(Notes.of(seed)), find_key(Notes.of(continuation))
    return {
        "key": None if seed_key is None else key == seed_key,
        "key_signature": None
        if seed_key is None
        else (key is not None and key.signature == seed_key.signature),
        "tempo": all(abs(q - tempo) <= TEMPO_TOLERANCE for q in tempos),
        "metre": (metres or {MIDI_DEFAULT_METRE})
        == {time_signature_at(seed, end) or MIDI_DEFAULT_METRE},
        "instruments": instruments(continuation) <= instruments(seed),
    }


# A continuation against its seed, bar by bar, on every note (drums included).


@dataclass(frozen=True)
class BarNotes:
    """The notes that start in a score's first `bars` bars, drum hits included, each placed
    on the STEPS_PER_BEAT grid: its bar and its step from that bar's line. An onset a hair
    before a bar line snaps onto it, so it counts in the bar it is heard in."""

    bar: np.ndarray
    step: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    drum: np.ndarray  # bool
    bar_steps: np.ndarray  # (bars,) length of each bar in steps
    bars: int

    @classmethod
    def of(cls, score: Score, bars: int) -> BarNotes:
        tpq = score.ticks_per_quarter
        lines = np.round(np.array(bar_lines(score, bars)) * STEPS_PER_BEAT / tpq)
        tracks = [t for t in score.tracks if t.note_num()]
        arrays = [t.notes.numpy() for t in tracks]
        if not arrays:
            empty = np.zeros(0, dtype=np.int64)
            return cls(
                empty,
                empty,
                empty,
                empty,
                empty.astype(bool),
                np.diff(lines).astype(np.int64),
                bars,
            )
        steps = np.round(np.concatenate([a["time"] for a in arrays]) * STEPS_PER_BEAT / tpq)
        bar = np.searchsorted(lines, steps, side="right") - 1
        inside = bar < bars
        bar = bar[inside]
        return cls(
            bar=bar,
            step=(steps[inside] - lines[bar]).astype(np.int64),
            pitch=np.concatenate([a["pitch"] for a in arrays]).astype(np.int64)[inside],
            velocity=np.concatenate([a["velocity"] for a in arrays]).astype(np.int64)[inside],
            drum=np.concatenate(
                [np.full(len(a["time"]), t.is_drum) for t, a in zip(tracks, arrays, strict=True)]
            )[inside],
            bar_steps=np.diff(lines).astype(np.int64),
            bars=bars,
        )

    def __len__(self) -> int:
        return len(self.bar)

    def per_bar(self) -> float:
        return len(self) / self.bars if self.bars else 0.0


def bars_written(score: Score) -> int:
    """Bars from the start to the end of the last note (in the score's metres)."""
    ends = [
        int((a["time"] + a["duration"]).max())
        for a in (t.notes.numpy() for t in score.tracks if t.note_num())
    ]
    if not ends:
        return 0
    tpq = score.ticks_per_quarter
    shortest = min(
        [tpq * 4 * ts.numerator // ts.denominator for ts in score.time_signatures] or [tpq * 4]
    )
    lines = bar_lines(score, max(ends) // max(1, shortest) + 2)
    return int(np.searchsorted(lines, max(ends), side="left"))


def pickup_bars(score: Score) -> int:
    """1 when the score opens with a pickup bar: its first metre lasts one bar and another
    follows (a continuation written on inside the seed's last bar starts so), else 0."""
    metres = sorted(score.time_signatures, key=lambda ts: ts.time)
    if len(metres) < 2 or metres[0].time != 0:
        return 0
    first, then = metres[0], metres[1]
    bar = score.ticks_per_quarter * 4 * first.numerator // first.denominator
    different = (first.numerator, first.denominator) != (then.numerator, then.denominator)
    return int(then.time == bar and different)


def drum_bar_share(notes: BarNotes) -> float:
    """Share of the bars in which a drum is hit."""
    if not notes.bars:
        return 0.0
    return len(np.unique(notes.bar[notes.drum])) / notes.bars


def onset_profile(notes: BarNotes) -> np.ndarray:
    """Where in the bar the notes start: shares per grid step, as long as the longest bar."""
    length = int(notes.bar_steps.max(initial=0))
    counts = np.bincount(notes.step.clip(0, max(0, length - 1)), minlength=length)[:length]
    return counts / counts.sum() if counts.sum() else counts.astype(float)


def profile_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation between two onset profiles (half their L1 distance, the shorter one
    padded with silence): 0 when the notes start at the same places in the bar in the same
    proportions, 1 when they never start at the same places."""
    length = max(len(a), len(b))
    a, b = np.pad(a, (0, length - len(a))), np.pad(b, (0, length - len(b)))
    if not a.any() or not b.any():
        return 1.0
    return float(np.abs(a - b).sum() / 2)


def bar_patterns(notes: BarNotes) -> list[frozenset[tuple[bool, int, int]]]:
    """Each bar's (drum, onset step, pitch) triples."""
    patterns: list[set[tuple[bool, int, int]]] = [set() for _ in range(notes.bars)]
    for bar, drum, step, pitch in zip(
        notes.bar.tolist(),
        notes.drum.tolist(),
        notes.step.tolist(),
        notes.pitch.tolist(),
        strict=True,
    ):
        patterns[bar].add((drum, step, pitch))
    return [frozenset(p) for p in patterns]


def bars_match(a: frozenset, b: frozenset) -> bool:
    """At least BAR_MATCH_SHARE of each bar's (onset, pitch) pairs are in the other one."""
    return bool(a) and bool(b) and len(a & b) >= BAR_MATCH_SHARE * max(len(a), len(b))


def repeated_bar_share(patterns: list[frozenset]) -> float | None:
    """Share of the bars with notes that match an earlier bar; None without notes."""
    played = [i for i, p in enumerate(patterns) if p]
    if not played:
        return None
    repeats = sum(any(bars_match(patterns[i], patterns[j]) for j in range(i)) for i in played)
    return repeats / len(played)


def reused_bar_share(patterns: list[frozenset], seed: list[frozenset]) -> float | None:
    """Share of the bars with notes that match a bar of the seed; None without notes."""
    played = [p for p in patterns if p]
    if not played:
        return None
    return sum(any(bars_match(p, s) for s in seed) for p in played) / len(played)


def loud_share(notes: BarNotes) -> float | None:
    """Share of the notes at velocity LOUD_VELOCITY or above; None without notes."""
    return float((notes.velocity >= LOUD_VELOCITY).mean()) if len(notes) else None


def instruments_kept(seed: Score, continuation: Score) -> float:
    """Share of the seed's instruments (GM programs, drums as DRUMS) that play in the
    continuation."""
    wanted = instruments(seed)
    return len(wanted & instruments(continuation)) / len(wanted) if wanted else 1.0


# Comparing two sets of values of one feature.


def kde_bandwidth(values: np.ndarray, floor: float) -> float:
    """Scott's rule, as scipy.stats.gaussian_kde, never below `floor` (constant features)."""
    return max(
        float(np.std(values, ddof=1)) * len(values) ** -0.2 if len(values) > 1 else 0.0, floor
    )


def kde(values: np.ndarray, grid: np.ndarray, bandwidth: float) -> np.ndarray:
    """Gaussian kernel density of `values` at the points of `grid`."""
    z = (grid[:, None] - np.asarray(values, dtype=float)[None, :]) / bandwidth
    return np.exp(-0.5 * z * z).sum(axis=1) / (len(values) * bandwidth * math.sqrt(2 * math.pi))


def kde_grid(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float, float]:
    """A grid covering both sets' densities, and each set's bandwidth."""
    pooled = np.concatenate([a, b]).astype(float)
    span = float(np.ptp(pooled))
    floor = 1e-3 * (span or max(1.0, abs(float(pooled.mean()))))
    bw_a, bw_b = kde_bandwidth(a, floor), kde_bandwidth(b, floor)
    margin = 4 * max(bw_a, bw_b)
    grid = np.linspace(pooled.min() - margin, pooled.max() + margin, KDE_POINTS)
    return grid, bw_a, bw_b


def overlapping_area(a: np.ndarray, b: np.ndarray) -> float:
    """Area shared by the two sets' density estimates: 1 for the same distribution, 0 for
    disjoint ones (Yang & Lerch 2018)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not len(a) or not len(b):
        raise ValueError(f"both sets need values (received {len(a)} and {len(b)})")
    grid, bw_a, bw_b = kde_grid(a, b)
    shared = np.minimum(kde(a, grid, bw_a), kde(b, grid, bw_b))
    return float(min(1.0, np.trapezoid(shared, grid)))
