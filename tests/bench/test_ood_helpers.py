"""The out-of-domain bench's baselines and clip loudness, on inputs with known answers."""

from __future__ import annotations

import random

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from bench.ood_measure import clip_loudness
from bench.seed_baselines import random_in_scale, repeat_seed
from engine.audio.loudness import ABSOLUTE_GATE_LUFS
from engine.evaluation.musical_stats import Key

TPQ = 480


def two_bar_seed() -> Score:
    """3/4: a melody of three notes per bar and a drum hit on each downbeat."""
    score = Score(TPQ)
    score.tempos.append(Tempo(0, 90.0))
    score.time_signatures.append(TimeSignature(0, 3, 4))
    melody, drums = Track(program=65), Track(is_drum=True)
    for i, pitch in enumerate([60, 64, 67, 65, 62, 71]):
        melody.notes.append(Note(i * TPQ, 2 * TPQ, pitch, 90 + i))  # each rings into the next
    drums.notes.append(Note(0, TPQ // 4, 36, 100))
    drums.notes.append(Note(3 * TPQ, TPQ // 4, 36, 100))
    score.tracks.extend([melody, drums])
    return score


def test_repeating_the_seed_loops_every_track_and_cuts_at_the_end():
    looped = repeat_seed(two_bar_seed(), 2, 5)  # 15 beats: two loops and a half
    melody, drums = looped.tracks
    assert melody.program == 65 and drums.is_drum
    assert [n.time // TPQ for n in melody.notes] == list(range(15))
    assert [n.pitch for n in melody.notes] == [60, 64, 67, 65, 62, 71] * 2 + [60, 64, 67]
    assert melody.notes[-1].duration == TPQ  # cut at the fifth bar line
    assert [n.time // TPQ for n in drums.notes] == [0, 3, 6, 9, 12]
    assert looped.tempos[0].qpm == pytest.approx(90, abs=1e-3)


def test_random_notes_keep_the_rhythm_and_stay_in_the_scale_and_range():
    seed = two_bar_seed()
    looped = repeat_seed(seed, 2, 4)
    noise = random_in_scale(seed, 2, 4, Key(0, minor=False), random.Random(1))
    for ours, theirs in zip(noise.tracks, looped.tracks, strict=True):
        assert [(n.time, n.duration, n.velocity) for n in ours.notes] == [
            (n.time, n.duration, n.velocity) for n in theirs.notes
        ]
    pitches = [n.pitch for n in noise.tracks[0].notes]
    assert all(60 <= p <= 71 and p % 12 in Key(0, minor=False).scale for p in pitches)
    assert pitches != [n.pitch for n in looped.tracks[0].notes]  # not the seed's melody
    assert [n.pitch for n in noise.tracks[1].notes] == [36] * 4  # drums as they were


def test_clip_loudness_is_bs1770_with_silence_at_the_gate():
    rate = 48_000
    t = np.arange(2 * rate) / rate
    sine = np.sin(2 * np.pi * 997 * t)[:, None].repeat(2, axis=1)  # full scale, stereo
    # BS.1770's reference: a 997 Hz sine on both channels reads its own peak level (0 LUFS);
    # an RMS level would read it 3 dB lower.
    assert clip_loudness(sine, rate) == pytest.approx(0.0, abs=0.05)
    assert clip_loudness(sine / 10, rate) == pytest.approx(-20.0, abs=0.05)
    # K-weighting: 50 Hz at the same level counts for less than 997 Hz.
    hum = np.sin(2 * np.pi * 50 * t)[:, None].repeat(2, axis=1)
    assert clip_loudness(hum, rate) < -1.0
    # Silence in the clip barely lowers it (only the blocks across the edge); a silent clip
    # reads as the absolute gate.
    assert clip_loudness(np.concatenate([sine, np.zeros_like(sine)]), rate) == pytest.approx(
        0.0, abs=0.5
    )
    assert clip_loudness(np.zeros((rate, 2)), rate) == ABSOLUTE_GATE_LUFS
