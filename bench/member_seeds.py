"""Seeds like the ones members upload, built in code (no files, no downloads).

What members attach is mostly not folk tunes: band loops with drums and bass, a tune in 6/8,
an odd-metre groove, a performed piano piece, a sax line, or a whole song of a few hundred
bars. Each function returns a symusic Score; `SEEDS` names them for benchmarks and tests, and
`midi_bytes` gives what a member's upload would be. Everything is deterministic: the same
call gives the same notes.

Light on purpose (symusic, no torch): the bot-side benchmarks may import it too.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from symusic import Note, Score, Tempo, TimeSignature, Track

from bench.machine import REPO_ROOT

EXAMPLES = REPO_ROOT / "engine" / "examples"  # the bundled seeds
TPQ = 480
KICK, SNARE, CLOSED_HAT, OPEN_HAT, RIDE, CLAP = 36, 38, 42, 46, 51, 39
PIANO, E_PIANO, NYLON_GUITAR, FINGER_BASS, ALTO_SAX, STRINGS = 0, 4, 24, 33, 65, 48
# I-V-vi-IV in C and ii-V-I-vi, as chord roots with their triads (MIDI pitches of the root).
POP_ROOTS = [60, 55, 57, 53]
JAZZ_ROOTS = [62, 55, 60, 57]

Notes = list[tuple[float, float, int, int]]  # (start beat, beats, pitch, velocity)


def _track(name: str, program: int, notes: Notes, *, drum: bool = False) -> Track:
    track = Track(name=name, program=program, is_drum=drum)
    for start, beats, pitch, velocity in notes:
        track.notes.append(
            Note(
                max(0, round(start * TPQ)),
                max(1, round(beats * TPQ)),
                pitch,
                max(1, min(127, velocity)),
            )
        )
    return track


def _score(bpm: float, metre: tuple[int, int], tracks: list[Track]) -> Score:
    score = Score(TPQ)
    score.tempos.append(Tempo(0, bpm))
    score.time_signatures.append(TimeSignature(0, *metre))
    score.tracks.extend(tracks)
    return score


def _triad(root: int, minor: bool = False) -> list[int]:
    return [root, root + (3 if minor else 4), root + 7]


def band_loop(bars: int = 8, *, seed: int = 0) -> Score:
    """4/4 at 118 bpm: drums with sixteenth hi-hats, a bass line, syncopated keys chords."""
    rng = random.Random(seed)
    drums: Notes = []
    bass: Notes = []
    keys: Notes = []
    for bar in range(bars):
        b = bar * 4.0
        root = POP_ROOTS[bar % 4]
        minor = root == 57
        for step in range(16):
            t = b + step / 4
            drums.append(
                (t, 0.1, CLOSED_HAT, 70 + (12 if step % 4 == 0 else 0) + rng.randint(-8, 8))
            )
        for beat in (0, 2.5) if bar % 2 else (0, 1.75, 2.5):
            drums.append((b + beat, 0.25, KICK, 105))
        for beat in (1, 3):
            drums.append((b + beat, 0.25, SNARE, 100))
        if bar % 4 == 3:
            drums += [(b + 3.5 + i / 8, 0.1, SNARE, 80 + 8 * i) for i in range(4)]
        for eighth in range(8):
            pitch = root - 24 + (7 if eighth in (3, 6) else 0)
            bass.append((b + eighth / 2, 0.45, pitch, 92 + rng.randint(-6, 6)))
        for beat, length in ((0, 1.5), (1.5, 1.0), (3, 0.5), (3.5, 0.5)):
            for pitch in _triad(root, minor):
                keys.append((b + beat, length, pitch, 72 + rng.randint(-5, 5)))
    return _score(
        118,
        (4, 4),
        [
            _track("Drums", 0, drums, drum=True),
            _track("Bass", FINGER_BASS, bass),
            _track("Keys", E_PIANO, keys),
        ],
    )


def six_eight_tune(bars: int = 8, *, seed: int = 1) -> Score:
    """6/8 at 116 (quarter) bpm: a running melody in eighths over guitar and bass."""
    rng = random.Random(seed)
    scale = [62, 64, 66, 67, 69, 71, 73, 74]
    melody: Notes = []
    guitar: Notes = []
    bass: Notes = []
    degree = 0
    for bar in range(bars):
        b = bar * 3.0  # six eighths = three quarters
        for eighth in range(6):
            degree = max(0, min(len(scale) - 1, degree + rng.choice([-2, -1, 1, 1, 2])))
            length = 1.0 if eighth in (2, 5) and rng.random() < 0.4 else 0.5
            if eighth in (2, 5) or length == 0.5:
                melody.append(
                    (b + eighth / 2, length, scale[degree] + 12, 88 if eighth in (0, 3) else 74)
                )
        root = [50, 55, 57, 50][bar % 4]
        bass += [(b, 1.5, root - 12, 90), (b + 1.5, 1.5, root - 5, 84)]
        for half in (0, 1.5):
            for i, pitch in enumerate(_triad(root)):
                guitar.append((b + half + i / 2, 0.5, pitch, 64))
    return _score(
        116,
        (6, 8),
        [
            _track("Whistle", 78, melody),
            _track("Guitar", NYLON_GUITAR, guitar),
            _track("Bass", 32, bass),
        ],
    )


def five_four_groove(bars: int = 8, *, seed: int = 2) -> Score:
    """5/4 at 168 bpm (3+2): ride cymbal, kick and snare, a bass ostinato, piano voicings."""
    rng = random.Random(seed)
    drums: Notes = []
    bass: Notes = []
    piano: Notes = []
    for bar in range(bars):
        b = bar * 5.0
        for beat in range(5):
            drums.append((b + beat, 0.2, RIDE, 80))
            drums.append((b + beat + 2 / 3, 0.1, RIDE, 60))  # swung
        drums += [
            (b, 0.25, KICK, 100),
            (b + 3, 0.25, KICK, 96),
            (b + 2, 0.25, SNARE, 70),
            (b + 4, 0.25, SNARE, 90),
        ]
        root = JAZZ_ROOTS[bar % 4]
        for beat, offset in ((0, 0), (1, 7), (2, 12), (3, 0), (4, 7)):
            bass.append((b + beat, 0.9, root - 24 + offset, 90 + rng.randint(-5, 5)))
        voicing = [root, root + 4, root + 10, root + 14]
        for beat in (0.67, 3.0):
            for pitch in voicing:
                piano.append((b + beat, 1.2, pitch, 66 + rng.randint(-6, 6)))
    return _score(
        168,
        (5, 4),
        [
            _track("Drums", 0, drums, drum=True),
            _track("Bass", 32, bass),
            _track("Piano", PIANO, piano),
        ],
    )


def waltz_piano(bars: int = 8, *, seed: int = 3) -> Score:
    """3/4 at 138 bpm: a melody over oom-pah-pah in one piano track."""
    rng = random.Random(seed)
    notes: Notes = []
    pitch = 76
    for bar in range(bars):
        b = bar * 3.0
        root = [48, 53, 55, 48][bar % 4]
        notes.append((b, 1, root, 80))
        for beat in (1, 2):
            for p in _triad(root + 12)[1:]:
                notes.append((b + beat, 0.9, p, 62))
        for beat, length in ((0, 1.5), (1.5, 0.5), (2, 1)):
            pitch = max(67, min(88, pitch + rng.choice([-3, -2, -1, 1, 2, 4])))
            notes.append((b + beat, length, pitch, 84))
    return _score(138, (3, 4), [_track("Piano", PIANO, notes)])


def dense_piano(bars: int = 8, *, seed: int = 4) -> Score:
    """4/4 at 84 bpm, performed: sixteenth arpeggios in both hands under a chordal melody,
    with the timing and dynamics of a player (onsets off the grid by a few ms)."""
    rng = random.Random(seed)
    notes: Notes = []
    for bar in range(bars):
        b = bar * 4.0
        root = POP_ROOTS[bar % 4]
        minor = root == 57
        chord = _triad(root, minor)
        shape = [chord[0] - 24, chord[1] - 12, chord[2] - 12, chord[0] - 12]
        for step in range(16):
            jitter = rng.uniform(-0.03, 0.03)
            swell = int(20 * (step % 8) / 8)
            notes.append(
                (b + step / 4 + jitter, 0.3, shape[step % 4], 56 + swell + rng.randint(-6, 6))
            )
            notes.append(
                (
                    b + step / 4 + 0.125 + jitter,
                    0.2,
                    chord[step % 3] + 12,
                    50 + swell + rng.randint(-6, 6),
                )
            )
        for beat in range(4):
            top = chord[(bar + beat) % 3] + 24
            for p in (top - 12, top - 5, top):
                notes.append((b + beat + rng.uniform(-0.02, 0.02), 0.9, p, 80 + rng.randint(-8, 8)))
    return _score(84, (4, 4), [_track("Piano", PIANO, notes)])


def sax_melody(bars: int = 8, *, seed: int = 5) -> Score:
    """4/4 at 132 bpm: an alto sax line in swung eighths with rests and long notes."""
    rng = random.Random(seed)
    blues = [60, 63, 65, 66, 67, 70, 72, 75]
    notes: Notes = []
    degree = 4
    for bar in range(bars):
        b = bar * 4.0
        beat = 0.0
        while beat < 4:
            if rng.random() < 0.15:
                beat += 0.5  # a breath
                continue
            degree = max(0, min(len(blues) - 1, degree + rng.choice([-2, -1, -1, 1, 1, 3])))
            length = rng.choice([0.5, 0.5, 0.5, 1.0, 1.5])
            swing = 0.16 if beat % 1 == 0.5 else 0.0
            notes.append(
                (b + beat + swing, length * 0.9, blues[degree] + 5, 70 + rng.randint(0, 35))
            )
            beat += length
    return _score(132, (4, 4), [_track("Alto sax", ALTO_SAX, notes)])


def long_seed(bars: int = 320, *, seed: int = 6) -> Score:
    """A whole song: verse/chorus sections of a band loop with a string pad, `bars` long."""
    rng = random.Random(seed)
    loop = band_loop(bars, seed=seed)
    pad: Notes = []
    for section in range(0, bars, 8):
        if rng.random() < 0.5:
            continue  # a verse without strings
        for bar in range(section, min(bars, section + 8)):
            root = POP_ROOTS[bar % 4]
            for pitch in _triad(root + 12, root == 57):
                pad.append((bar * 4.0, 4, pitch, 58))
    loop.tracks.append(_track("Strings", STRINGS, pad))
    return loop


SEEDS: dict[str, Callable[[], Score]] = {
    "band loop (drums, bass, keys)": band_loop,
    "6/8 tune": six_eight_tune,
    "5/4 groove": five_four_groove,
    "3/4 waltz piano": waltz_piano,
    "dense performed piano": dense_piano,
    "sax melody": sax_melody,
    "long seed (320 bars)": long_seed,
}


def bundled() -> dict[str, Score]:
    """The example seeds shipped with the engine, by file name."""
    return {path.name: Score(path) for path in sorted(EXAMPLES.glob("*.mid"))}


def midi_bytes(score: Score) -> bytes:
    """The seed as a member would upload it: a standard MIDI file."""
    return score.dumps_midi()
