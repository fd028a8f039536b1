"""Training pieces re-voiced onto other instruments, dynamics and keys (deterministic).

music21's corpus is folk melodies and chorales on the piano at a few velocities, in a few
keys; members' seeds are bands, sax melodies, bass lines and pads. An augmented copy of a
piece keeps its notes and rhythm but:

- voices each part on a GM program chosen by its role and register: the top line of a piece
  (or a lone melody) on a melody instrument (reeds, pipes, brass, strings, synth leads,
  guitars, keys...), the lowest line of a polyphonic piece on a bass (basses, low brass,
  cello, bassoon...), inner lines on inner instruments or merged onto one chordal instrument
  (keys, guitars, organ, pads, ensembles), a polyphonic part (a piano piece) on a chordal one;
- transposes the whole piece into another key, within what keeps every part inside its
  instrument's range (a lone line may also move by octaves to fit, a bass line down one);
- gives each part its own dynamic level (pp to ff), a contrast around it and a little jitter.

Everything is drawn from a generator seeded by the piece's id and the copy's number, so a
build reproduces the same files. Drum tracks keep their notes and get the dynamics only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from symusic import Note, Score

# Bump when the recipe changes: augmented files live in a folder named after it.
AUGMENT_VERSION = 1
TOKEN_PITCH_RANGE = (21, 108)  # the tokenizer's (engine.model.tokenizer.PITCH_RANGE, inclusive)
TRANSPOSE_RANGE = range(-6, 6)  # every key once; what the parts' ranges allow
DYNAMIC_LEVELS = (36, 50, 64, 80, 96, 110)  # pp p mp mf f ff, as MIDI velocities
MELODY_LIFT = 8  # the melody sits this much above the piece's level
LEVEL_SPREAD = 6.0  # s.d. of each part's level around the piece's
JITTER = 4.0  # s.d. of each note's velocity around its part's shape
CONTRAST = (0.5, 1.6)  # how much of the original accents each part keeps (uniform)
POLYPHONIC_SHARE = 0.2  # a part with more of its notes sounding over another is chordal
BASS_MEDIAN = 60  # the lowest part of a polyphonic piece is a bass line below this

# Practical sounding ranges (MIDI notes) of the programs pieces are voiced onto.
RANGES: dict[int, tuple[int, int]] = {
    **{p: (21, 108) for p in range(0, 8)},  # pianos, electric pianos, harpsichord, clavinet
    8: (60, 108),
    9: (72, 108),
    10: (60, 96),
    11: (53, 89),
    12: (45, 96),
    13: (65, 108),
    14: (60, 79),
    15: (50, 88),  # chromatic percussion
    **{p: (36, 96) for p in range(16, 21)},
    21: (53, 89),
    22: (60, 96),
    23: (53, 89),  # organs
    **{p: (40, 88) for p in range(24, 32)},  # guitars
    **{p: (28, 60) for p in range(32, 40)},  # basses
    40: (55, 103),
    41: (48, 88),
    42: (36, 76),
    43: (28, 60),
    44: (36, 96),
    45: (28, 96),
    46: (24, 103),  # violin, viola, cello, contrabass, tremolo, pizzicato, harp
    48: (28, 96),
    49: (28, 96),
    50: (36, 96),
    51: (36, 96),
    52: (40, 81),
    53: (40, 81),
    54: (40, 84),  # string ensembles, synth strings, choir aahs, voice oohs, synth voice
    56: (54, 84),
    57: (40, 72),
    58: (28, 58),
    59: (54, 82),
    60: (34, 77),
    61: (36, 84),
    62: (36, 90),
    63: (36, 90),  # trumpet, trombone, tuba, muted trumpet, horn, brass
    64: (56, 88),
    65: (49, 81),
    66: (44, 76),
    67: (36, 69),
    68: (58, 91),
    69: (52, 81),
    70: (34, 75),
    71: (50, 94),  # saxes, oboe, english horn, bassoon, clarinet
    72: (74, 108),
    73: (60, 96),
    74: (60, 91),
    75: (60, 96),
    76: (60, 84),
    77: (55, 84),
    78: (60, 96),
    79: (60, 84),  # piccolo, flute, recorder, pan flute ... ocarina
    **{p: (36, 96) for p in range(80, 87)},
    87: (28, 72),  # synth leads (87: bass + lead)
    **{p: (36, 96) for p in range(88, 104)},  # synth pads and effects
    104: (48, 84),
    105: (48, 84),
    106: (50, 86),
    107: (55, 91),
    108: (60, 88),
    109: (55, 79),
    110: (55, 100),
    111: (60, 91),
    114: (52, 88),  # ethnic, steel drums
}

# Programs each role is voiced onto, with weights (common instruments weigh more).
_MELODY = {
    **dict.fromkeys((64, 65, 66, 68, 71), 3.0),
    69: 1.0,  # reeds
    **dict.fromkeys((73, 74), 3.0),
    **dict.fromkeys((72, 75, 78), 1.5),
    **dict.fromkeys((76, 77, 79), 1.0),  # pipes
    **dict.fromkeys((56, 60), 3.0),
    **dict.fromkeys((59, 61), 1.5),  # brass
    40: 4.0,
    41: 1.0,
    110: 1.5,  # violin, viola, fiddle
    **dict.fromkeys((80, 81), 3.0),
    **dict.fromkeys(range(82, 87), 1.0),  # synth leads
    **dict.fromkeys((24, 25, 26, 27), 2.0),
    **dict.fromkeys((28, 29, 30), 1.0),  # guitars
    **dict.fromkeys((0, 4, 5), 2.0),
    **dict.fromkeys((1, 2, 3, 6, 7), 1.0),  # keys
    **dict.fromkeys((8, 9, 10, 11, 12, 13), 1.0),
    15: 0.5,  # mallets, bells
    **dict.fromkeys((16, 19, 21, 22), 1.0),
    **dict.fromkeys((17, 18, 20, 23), 0.5),  # organs
    **dict.fromkeys((104, 105, 106, 107, 108, 109, 111, 114), 0.7),  # ethnic, steel drums
    **dict.fromkeys((52, 53, 54), 1.0),  # voices
}
_BASS = {
    **dict.fromkeys((32, 33, 34), 4.0),
    **dict.fromkeys((35, 36, 37, 38, 39), 2.0),  # basses
    42: 3.0,
    43: 3.0,
    45: 1.0,  # cello, contrabass, pizzicato
    57: 2.0,
    58: 2.0,
    70: 2.0,
    67: 1.5,
    87: 1.0,  # trombone, tuba, bassoon, bari sax
    **dict.fromkeys((0, 1, 4, 5, 19), 1.0),  # a keyboard's left hand, church organ
}
_INNER = {
    41: 3.0,
    42: 2.0,
    40: 1.0,
    60: 3.0,
    57: 2.0,
    61: 1.0,  # viola, cello, horn, trombone
    71: 3.0,
    69: 1.5,
    70: 1.5,
    65: 2.0,
    66: 2.0,
    68: 1.0,  # reeds
    **dict.fromkeys((48, 49, 52, 53), 1.5),
    **dict.fromkeys((50, 51, 54), 1.0),  # ensembles
    **dict.fromkeys((24, 25, 26, 27), 1.0),
    **dict.fromkeys((0, 4, 11, 19), 1.0),
    **dict.fromkeys((62, 63, 88, 89, 94), 0.7),  # synth brass, pads
}
_CHORDS = {
    **dict.fromkeys((0, 4, 5), 3.0),
    **dict.fromkeys((1, 2, 3, 6, 7), 1.0),  # keys
    **dict.fromkeys((24, 25, 26, 27), 2.5),
    **dict.fromkeys((28, 29, 30, 31), 1.0),  # guitars
    **dict.fromkeys((16, 19), 2.0),
    **dict.fromkeys((17, 18, 20, 21, 23), 1.0),  # organs
    **dict.fromkeys((88, 89, 90, 91, 92, 93, 94, 95), 1.5),  # synth pads
    **dict.fromkeys((48, 49, 50, 51, 52, 53, 54), 1.5),
    61: 1.0,
    62: 1.0,
    63: 1.0,  # ensembles
    46: 2.0,
    11: 1.0,
    12: 1.0,
    15: 0.5,
    44: 0.7,
    45: 0.7,  # harp, mallets, strings
    **dict.fromkeys(range(96, 104), 0.4),
    **dict.fromkeys((105, 107), 0.5),  # fx, banjo, koto
}
ROLES: dict[str, dict[int, float]] = {
    "melody": _MELODY,
    "bass": _BASS,
    "inner": _INNER,
    "chords": _CHORDS,
}

# How a polyphonic piece is arranged, with weights: each line its own instrument; melody,
# bass and one chordal instrument for the lines between; or everything on one instrument.
ARRANGEMENTS = {"ensemble": 0.5, "band": 0.3, "one instrument": 0.2}
LOW_SOLO_SHARE = 0.15  # lone melodies played by a bass instrument instead (octaves lower)


@dataclass(frozen=True)
class TrackShape:
    """One track of a piece, described by what decides how it is voiced."""

    index: int  # in score.tracks
    low: int
    high: int
    median: float
    polyphonic: bool


def piece_rng(piece_id: str, copy: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{piece_id}#{copy}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def describe_parts(score: Score) -> list[TrackShape]:
    """The pitched tracks with notes, lowest median first."""
    parts = []
    for i, track in enumerate(score.tracks):
        if track.is_drum or not track.note_num():
            continue
        a = track.notes.numpy()
        pitch = a["pitch"].astype(np.int64)
        parts.append(
            TrackShape(
                i,
                int(pitch.min()),
                int(pitch.max()),
                float(np.median(pitch)),
                overlap_share(a["time"], a["duration"]) > POLYPHONIC_SHARE,
            )
        )
    return sorted(parts, key=lambda p: (p.median, p.index))


def overlap_share(time: np.ndarray, duration: np.ndarray) -> float:
    """Share of notes that start while an earlier note of the same part still sounds."""
    if len(time) < 2:
        return 0.0
    order = np.argsort(time, kind="stable")
    start = time[order].astype(np.int64)
    end = start + duration[order].astype(np.int64)
    running_end = np.maximum.accumulate(end)[:-1]
    return float(np.mean(start[1:] < running_end))


def assign_roles(parts: Sequence[TrackShape]) -> dict[int, str]:
    """Role of each part (by index): melody, bass, inner or chords."""
    if len(parts) == 1:
        part = parts[0]
        return {part.index: "chords" if part.polyphonic else "melody"}
    roles = {}
    for rank, part in enumerate(parts):  # lowest first
        if part.polyphonic:
            roles[part.index] = "chords"
        elif rank == len(parts) - 1:
            roles[part.index] = "melody"
        elif rank == 0 and part.median < BASS_MEDIAN:
            roles[part.index] = "bass"
        else:
            roles[part.index] = "inner"
    return roles


def octave_shift(
    part: TrackShape, transpose: int, program: int, octaves: Sequence[int]
) -> int | None:
    """The octave move (from `octaves`, smallest first) that fits the part in the
    program's range once transposed, or None."""
    low, high = RANGES[program]
    for k in sorted(octaves, key=abs):
        if low <= part.low + transpose + 12 * k and part.high + transpose + 12 * k <= high:
            return k
    return None


def choose(rng: np.random.Generator, weights: dict[int, float], fits) -> int | None:
    """A program drawn by weight among those `fits` accepts, or None."""
    programs = [p for p in weights if fits(p)]
    if not programs:
        return None
    w = np.array([weights[p] for p in programs])
    return programs[int(rng.choice(len(programs), p=w / w.sum()))]


@dataclass(frozen=True)
class Voicing:
    program: int
    octave: int  # octaves the part moves, on top of the piece's transposition


def voice_one(
    part: TrackShape, role: str, transpose: int, octaves: Sequence[int], rng: np.random.Generator
) -> Voicing | None:
    """A program of `role` the part fits (moved by one of `octaves`), or None."""
    shifts = {p: octave_shift(part, transpose, p, octaves) for p in ROLES[role]}
    program = choose(rng, ROLES[role], lambda p: shifts[p] is not None)
    if program is None:
        return None
    shift = shifts[program]
    assert shift is not None
    return Voicing(program, shift)


def fits_unmoved(parts: Sequence[TrackShape], transpose: int):
    """Whether a program can play all of `parts` where they are (one instrument for all)."""
    return lambda p: all(octave_shift(part, transpose, p, (0,)) == 0 for part in parts)


def voice_parts(
    parts: Sequence[TrackShape], transpose: int, rng: np.random.Generator
) -> dict[int, Voicing]:
    """A program and an octave move for each part that can be re-voiced (others keep
    theirs)."""
    if not parts:
        return {}
    roles = assign_roles(parts)
    if len(parts) == 1:
        part = parts[0]
        role = roles[part.index]
        if role == "melody" and rng.random() < LOW_SOLO_SHARE:
            role = "bass"
        octaves = (0,) if part.polyphonic else (-2, -1, 0, 1, 2)
        voicing = voice_one(part, role, transpose, octaves, rng)
        return {part.index: voicing} if voicing else {}

    names = list(ARRANGEMENTS)
    weights = np.array(list(ARRANGEMENTS.values()))
    arrangement = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    if arrangement == "one instrument":
        program = choose(rng, ROLES["chords"], fits_unmoved(parts, transpose))
        return {} if program is None else {part.index: Voicing(program, 0) for part in parts}

    voicings: dict[int, Voicing] = {}
    inner = [p for p in parts if roles[p.index] in ("inner", "chords")]
    shared = None  # in a band, the lines between melody and bass share a chordal instrument
    if arrangement == "band" and inner:
        shared = choose(rng, ROLES["chords"], fits_unmoved(inner, transpose))
    for part in parts:
        role = roles[part.index]
        if shared is not None and part in inner:
            voicings[part.index] = Voicing(shared, 0)
            continue
        # The top line may rise an octave and the bass fall one: neither crosses the others.
        octaves = {"melody": (0, 1), "bass": (0, -1)}.get(role, (0,))
        voicing = voice_one(part, role, transpose, octaves, rng)
        if voicing:
            voicings[part.index] = voicing
    return voicings


def choose_transposition(score: Score, rng: np.random.Generator) -> int:
    """Semitones within TRANSPOSE_RANGE that keep every pitched note in the token range."""
    pitches = [n.pitch for t in score.tracks if not t.is_drum for n in t.notes]
    if not pitches:
        return 0
    low, high = min(pitches), max(pitches)
    allowed = [
        t
        for t in TRANSPOSE_RANGE
        if TOKEN_PITCH_RANGE[0] <= low + t and high + t <= TOKEN_PITCH_RANGE[1]
    ]
    return int(rng.choice(allowed)) if allowed else 0


def shape_velocities(velocity: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """The part's accents kept around `level`, scaled by a drawn contrast, with jitter."""
    v = velocity.astype(float)
    contrast = rng.uniform(*CONTRAST)
    shaped = level + (v - v.mean()) * contrast + rng.normal(0.0, JITTER, len(v))
    return np.clip(np.rint(shaped), 1, 127).astype(np.int8)


def augment(score: Score, piece_id: str, copy: int) -> Score:
    """Copy number `copy` (1, 2, ...) of the piece, re-voiced, re-keyed and re-dynamised."""
    rng = piece_rng(piece_id, copy)
    out = score.copy()
    transpose = choose_transposition(out, rng)
    voicings = voice_parts(describe_parts(out), transpose, rng)
    piece_level = float(rng.choice(DYNAMIC_LEVELS))
    top = max(voicings, key=lambda i: _median(out.tracks[i]), default=None)
    for i, track in enumerate(out.tracks):
        if not track.note_num():
            continue
        a = track.notes.numpy()
        pitch = a["pitch"].astype(np.int64)
        if not track.is_drum:
            voicing = voicings.get(i)
            pitch = pitch + transpose + (12 * voicing.octave if voicing else 0)
            if voicing:
                track.program = voicing.program
        level = piece_level + rng.normal(0.0, LEVEL_SPREAD) + (MELODY_LIFT if i == top else 0)
        velocity = shape_velocities(a["velocity"], float(np.clip(level, 20, 120)), rng)
        track.notes = Note.from_numpy(a["time"], a["duration"], pitch.astype(np.int8), velocity)
    return out


def _median(track) -> float:
    return float(np.median(track.notes.numpy()["pitch"])) if track.note_num() else 0.0
