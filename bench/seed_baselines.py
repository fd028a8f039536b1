"""Two continuations that need no model, to judge the model's against: the seed looped, and
random notes of the seed's scale played in the seed's rhythm.

A model that continues its seed should come closer to the real continuation than both.
"""

from __future__ import annotations

import random

from symusic import Note, Score, Track

from engine.evaluation.musical_stats import Key, bar_lines


def repeat_seed(seed: Score, seed_bars: int, bars: int) -> Score:
    """The seed's `seed_bars` bars played over and over until `bars` bars, every track and
    velocity as in the seed, notes cut at the end."""
    period = bar_lines(seed, seed_bars)[-1]
    looped = Score(seed.ticks_per_quarter)
    looped.tempos = seed.tempos.copy()
    looped.time_signatures = seed.time_signatures.copy()
    end = bar_lines(looped, bars)[-1]
    for track in seed.tracks:
        copy = Track(name=track.name, program=track.program, is_drum=track.is_drum)
        for start in range(0, end, period):
            for note in track.notes:
                time = start + note.time
                if note.time < period and time < end:
                    copy.notes.append(
                        Note(time, min(note.duration, end - time), note.pitch, note.velocity)
                    )
        looped.tracks.append(copy)
    return looped


def random_in_scale(
    seed: Score, seed_bars: int, bars: int, key: Key | None, rng: random.Random
) -> Score:
    """The looped seed with every pitched note replaced by a random pitch of `key`'s scale
    (any pitch without a key) within its track's range: the seed's density, rhythm,
    instruments and dynamics, none of its melody or harmony."""
    looped = repeat_seed(seed, seed_bars, bars)
    for track in looped.tracks:
        if track.is_drum or not track.note_num():
            continue
        pitches = track.notes.numpy()["pitch"]
        low, high = int(pitches.min()), int(pitches.max())
        choices = [p for p in range(low, high + 1) if key is None or p % 12 in key.scale]
        for note in track.notes:
            note.pitch = rng.choice(choices or [note.pitch])
    return looped
