"""What a continuation should keep of its seed: instruments, key, groove, dynamics.

Read once from the seed when a composition is planned. The sampler turns it into masks and
biases (which programs the model may write, which pitch classes and velocities it leans
toward, how dense a bar gets and where its onsets fall); the arranger continues the parts the
model cannot write from the seed's own material. Pure numpy and symusic: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from symusic import Score

from engine.evaluation.musical_stats import (
    MAJOR_SCALE,
    PITCH_CLASSES,
    Key,
    Notes,
    bar_lines,
    key_correlations,
)

DRUMS = 128  # the "program" of a drum part
# A part counts as monophonic when at most this share of its sounding time has two or more
# notes at once (a sax or a violin line, allowing for legato overlaps).
MONOPHONIC_OVERLAP = 0.1
# Pitch classes the seed dwells on this much (share of sounding time) belong to its scale even
# outside the key's diatonic set: a blues seed's flat third and seventh are its own.
OWN_PITCH_CLASS_SHARE = 0.04
# Below this correlation with the best key profile, the seed has no key worth holding to.
MIN_KEY_CORRELATION = 0.5
PERCENTILES = (5, 95)  # a part's range and dynamics, ignoring a stray note or two


@dataclass(frozen=True)
class Part:
    """One instrument of the seed."""

    program: int  # GM program, or DRUMS
    notes: int
    notes_per_bar: float
    low: int  # pitch range (5th-95th percentile)
    high: int
    velocity_low: int  # dynamics (5th-95th percentile)
    velocity_high: int
    monophonic: bool
    # Sounding time (ticks of the seed) on each pitch class, C first; empty for drums.
    pitch_weights: tuple[float, ...] = ()

    @property
    def is_drums(self) -> bool:
        return self.program == DRUMS

    @classmethod
    def from_values(cls, values: list) -> Part:
        part = cls(*values)
        return replace(part, pitch_weights=tuple(part.pitch_weights))


@dataclass(frozen=True)
class SeedProfile:
    parts: tuple[Part, ...]
    bars: int  # whole bars the seed spans
    numerator: int  # the metre at the seed's end
    denominator: int
    key: Key | None  # None: atonal, drums only, or too few notes to tell
    key_confidence: float  # correlation of the pitch classes with the key's profile, 0..1
    scale: frozenset[int]  # pitch classes that belong: the key's scale and the seed's own
    velocity_low: int
    velocity_high: int
    # Share of the pitched onsets at each position of a bar, at `positions_per_beat`.
    onset_profile: tuple[float, ...] = field(repr=False)
    positions_per_beat: int = 12
    # Share of the pitched sounding time on each pitch class (C first): which notes of the
    # scale the seed dwells on, its tonic and third above all.
    pitch_class_shares: tuple[float, ...] = (1 / PITCH_CLASSES,) * PITCH_CLASSES

    @property
    def pitched(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if not p.is_drums)

    @property
    def drums(self) -> Part | None:
        return next((p for p in self.parts if p.is_drums), None)

    @property
    def programs(self) -> frozenset[int]:
        return frozenset(p.program for p in self.parts)

    def notes_per_bar(self, programs: frozenset[int] | None = None) -> float:
        """Pitched notes per bar, of the given programs (default: every pitched part)."""
        return sum(
            p.notes_per_bar for p in self.pitched if programs is None or p.program in programs
        )

    def velocity_range(self, programs: frozenset[int] | None = None) -> tuple[int, int]:
        """The dynamics of the given pitched parts (default: the whole seed)."""
        parts = [p for p in self.pitched if programs is None or p.program in programs]
        if not parts:
            return self.velocity_low, self.velocity_high
        return min(p.velocity_low for p in parts), max(p.velocity_high for p in parts)

    def pitch_shares(self, program: int) -> tuple[float, ...]:
        """The pitch-class shares `program`'s parts give the seed (every pitched part's when
        the seed has no such part: a member's instrument, the keyboard voiced onto others)."""
        parts = [p for p in self.pitched if p.program == program and p.pitch_weights]
        if not parts:
            return self.pitch_class_shares
        weights = np.sum([p.pitch_weights for p in parts], axis=0)
        total = float(weights.sum())
        if total <= 0:
            return self.pitch_class_shares
        return tuple(float(w) / total for w in weights)

    def to_record(self) -> dict:
        """Plain values (the seed reader sends a profile to the engine as msgpack)."""
        record = {k: v for k, v in vars(self).items() if k not in ("parts", "key")}
        record["parts"] = [list(vars(p).values()) for p in self.parts]
        record["key"] = None if self.key is None else [self.key.tonic, self.key.minor]
        record["scale"] = sorted(self.scale)
        record["onset_profile"] = [float(x) for x in self.onset_profile]
        record["pitch_class_shares"] = list(self.pitch_class_shares)
        return record

    @classmethod
    def from_record(cls, record: dict) -> SeedProfile:
        fields = dict(record)
        fields["parts"] = tuple(Part.from_values(values) for values in record["parts"])
        fields["key"] = (
            None if record["key"] is None else Key(int(record["key"][0]), bool(record["key"][1]))
        )
        fields["scale"] = frozenset(record["scale"])
        fields["onset_profile"] = tuple(record["onset_profile"])
        fields["pitch_class_shares"] = tuple(record["pitch_class_shares"])
        return cls(**fields)


def profile_seed(score: Score, *, positions_per_beat: int = 12) -> SeedProfile:
    """The profile of a seed (ticks at any resolution)."""
    lines = _bar_lines_to_end(score)
    bars = max(1, len(lines) - 1)
    numerator, denominator = _metre_at_end(score)
    parts = tuple(p for p in (_part(t, bars) for t in score.tracks) if p is not None)

    notes = Notes.of(score)
    key, confidence = None, 0.0
    if len(notes) >= 4:
        correlations = key_correlations(notes)
        if correlations:
            best, r = max(correlations.items(), key=lambda kv: kv[1])
            if r >= MIN_KEY_CORRELATION:
                key, confidence = best, r
    scale = _scale(notes, key)

    velocities = np.concatenate(
        [t.notes.numpy()["velocity"] for t in score.tracks if t.note_num()] or [np.zeros(0)]
    )
    low, high = _range(velocities, default=(64, 96))
    return SeedProfile(
        parts=parts,
        bars=bars,
        numerator=numerator,
        denominator=denominator,
        key=key,
        key_confidence=confidence,
        scale=scale,
        velocity_low=low,
        velocity_high=high,
        onset_profile=tuple(
            float(x)
            for x in _onset_profile(score, lines, numerator, denominator, positions_per_beat)
        ),
        positions_per_beat=positions_per_beat,
        pitch_class_shares=_pitch_class_shares(notes),
    )


def scale_of(key: Key) -> frozenset[int]:
    """The diatonic pitch classes of a key; a minor key also keeps its raised seventh."""
    if key.minor:
        relative_major = (key.tonic + 3) % PITCH_CLASSES
        classes = {(relative_major + d) % PITCH_CLASSES for d in MAJOR_SCALE}
        classes.add((key.tonic + 11) % PITCH_CLASSES)  # the leading tone of harmonic minor
        return frozenset(classes)
    return frozenset((key.tonic + d) % PITCH_CLASSES for d in MAJOR_SCALE)


def _pitch_class_shares(notes: Notes) -> tuple[float, ...]:
    weights = np.bincount(
        notes.pitch % PITCH_CLASSES, weights=notes.duration, minlength=PITCH_CLASSES
    ).astype(np.float64)
    if weights.sum() <= 0:
        return (1 / PITCH_CLASSES,) * PITCH_CLASSES
    return tuple(float(w) for w in weights / weights.sum())


def _scale(notes: Notes, key: Key | None) -> frozenset[int]:
    if not len(notes):
        return frozenset(range(PITCH_CLASSES))
    weights = np.bincount(
        notes.pitch % PITCH_CLASSES, weights=notes.duration, minlength=PITCH_CLASSES
    )
    own = {int(pc) for pc in np.flatnonzero(weights >= OWN_PITCH_CLASS_SHARE * weights.sum())}
    if key is None:
        return frozenset(range(PITCH_CLASSES))
    return scale_of(key) | own


def _part(track, bars: int) -> Part | None:
    if not track.note_num():
        return None
    notes = track.notes.numpy()
    pitch_low, pitch_high = _range(notes["pitch"], default=(60, 72))
    velocity_low, velocity_high = _range(notes["velocity"], default=(64, 96))
    return Part(
        program=DRUMS if track.is_drum else int(track.program),
        notes=len(notes["pitch"]),
        notes_per_bar=len(notes["pitch"]) / bars,
        low=pitch_low,
        high=pitch_high,
        velocity_low=velocity_low,
        velocity_high=velocity_high,
        monophonic=not track.is_drum and _overlap_share(notes) <= MONOPHONIC_OVERLAP,
        pitch_weights=()
        if track.is_drum
        else tuple(
            float(w)
            for w in np.bincount(
                notes["pitch"].astype(np.int64) % PITCH_CLASSES,
                weights=notes["duration"].astype(np.float64),
                minlength=PITCH_CLASSES,
            )
        ),
    )


def _range(values: np.ndarray, *, default: tuple[int, int]) -> tuple[int, int]:
    if not len(values):
        return default
    low, high = np.percentile(values.astype(np.float64), PERCENTILES)
    return int(round(low)), int(round(high))


def _overlap_share(notes: np.ndarray) -> float:
    """Share of the sounding time during which two or more notes of the part sound."""
    start = notes["time"].astype(np.int64)
    end = start + np.maximum(notes["duration"].astype(np.int64), 1)
    times = np.concatenate([start, end])
    change = np.concatenate([np.ones(len(start)), -np.ones(len(start))])
    order = np.lexsort((change, times))  # note-offs first at one instant
    sounding = np.cumsum(change[order])[:-1]
    spans = np.diff(times[order]).astype(np.float64)
    audible = spans[sounding > 0].sum()
    return float(spans[sounding > 1].sum() / audible) if audible > 0 else 0.0


def _metre_at_end(score: Score) -> tuple[int, int]:
    if not len(score.time_signatures):
        return 4, 4
    last = max(score.time_signatures, key=lambda ts: ts.time)
    return int(last.numerator), int(last.denominator)


def _bar_lines_to_end(score: Score) -> list[int]:
    """Bar lines from 0 to the first one at or after the seed's last note ends."""
    end = score.end()
    lines = bar_lines(score, 1)
    while lines[-1] < end:
        lines = bar_lines(score, 2 * (len(lines) - 1))
    while len(lines) > 2 and lines[-2] >= end:
        lines.pop()
    return lines


def _onset_profile(
    score: Score, lines: list[int], numerator: int, denominator: int, per_beat: int
) -> np.ndarray:
    """Share of pitched onsets at each position of a bar of the final metre (REMI's grid:
    `per_beat` positions per beat of the time signature's denominator)."""
    size = numerator * per_beat
    profile = np.zeros(size)
    beat_ticks = score.ticks_per_quarter * 4 / denominator
    starts = np.asarray(lines[:-1])
    for track in score.tracks:
        if track.is_drum or not track.note_num():
            continue
        onsets = track.notes.numpy()["time"].astype(np.int64)
        bar = np.searchsorted(starts, onsets, side="right") - 1
        offset = onsets - starts[np.clip(bar, 0, len(starts) - 1)]
        position = np.rint(offset / beat_ticks * per_beat).astype(np.int64)
        np.add.at(profile, np.clip(position, 0, size - 1), 1.0)
    total = profile.sum()
    return profile / total if total > 0 else np.full(size, 1.0 / size)
