"""Write the bundled example seeds (our own short motifs).

Run: python -m engine.examples.make_examples

motif.mid         4 bars, 4/4, 100 bpm, piano: a folk-like tune over a simple left hand
waltz-violin.mid  4 bars, 3/4, 96 bpm, violin
band.mid          4 bars, 4/4, 120 bpm: flute melody, piano chords, bass, drums
"""

from __future__ import annotations

from pathlib import Path

from symusic import Note, Score, Tempo, TimeSignature, Track

HERE = Path(__file__).parent
TPQ = 480


def _track(
    name: str, program: int, notes: list[tuple[float, int, float, int]], is_drum: bool = False
) -> Track:
    """notes: (beat, pitch, beats, velocity)."""
    track = Track(name=name, program=program, is_drum=is_drum)
    for beat, pitch, length, velocity in notes:
        track.notes.append(Note(int(beat * TPQ), int(length * TPQ), pitch, velocity))
    return track


def _score(bpm: float, numerator: int, denominator: int, tracks: list[Track]) -> Score:
    score = Score(TPQ)
    score.tempos.append(Tempo(0, bpm))
    score.time_signatures.append(TimeSignature(0, numerator, denominator))
    score.tracks.extend(tracks)
    return score


def motif() -> Score:
    tune = [62, 64, 66, 67, 69, 71, 69, 66, 67, 66, 64, 62, 64, 66, 64, 62]
    rhythm = [1, 0.5, 0.5, 1, 1]
    melody, beat = [], 0.0
    for i, pitch in enumerate(tune):
        length = rhythm[i % len(rhythm)]
        melody.append((beat, pitch + 12, length, 90))
        beat += length
    bass = [(b * 2.0, p, 2.0, 70) for b, p in enumerate([50, 45, 43, 45, 50, 45, 43, 50])]
    return _score(100, 4, 4, [_track("Piano", 0, melody + bass)])


def waltz_violin() -> Score:
    notes = [
        (0, 69, 1, 85),
        (1, 71, 1, 70),
        (2, 73, 1, 70),
        (3, 74, 2, 90),
        (5, 73, 1, 70),
        (6, 71, 1, 85),
        (7, 69, 1, 70),
        (8, 68, 1, 70),
        (9, 69, 3, 90),
    ]
    return _score(96, 3, 4, [_track("Violin", 40, notes)])


def band() -> Score:
    melody = [
        (0, 72, 1, 90),
        (1, 74, 1, 80),
        (2, 76, 2, 90),
        (4, 79, 1, 90),
        (5, 76, 1, 80),
        (6, 74, 2, 85),
        (8, 72, 1, 90),
        (9, 69, 1, 80),
        (10, 67, 2, 85),
        (12, 72, 4, 90),
    ]
    chords = []
    for bar, root in enumerate([60, 57, 53, 55]):
        for offset in (0, 4, 7):
            chords.append((bar * 4, root + offset, 4, 60))
    bass = [
        (bar * 4 + b, root - 24, 1, 80) for bar, root in enumerate([60, 57, 53, 55]) for b in (0, 2)
    ]
    drums = [(beat, 36 if beat % 2 == 0 else 38, 0.5, 90) for beat in range(16)]
    drums += [(beat + 0.5, 42, 0.25, 60) for beat in range(16)]
    return _score(
        120,
        4,
        4,
        [
            _track("Flute", 73, melody),
            _track("Piano", 0, chords),
            _track("Bass", 33, bass),
            _track("Drums", 0, drums, is_drum=True),
        ],
    )


def main() -> None:
    for name, make in (("motif", motif), ("waltz-violin", waltz_violin), ("band", band)):
        path = HERE / f"{name}.mid"
        make().dump_midi(path)
        print(path)


if __name__ == "__main__":
    main()
