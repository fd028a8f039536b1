"""Quantising a performed seed: onsets and ends snapped to the nearest sixteenth or triplet.

A performance (a pianist's recording, a MIDI keyboard played live) puts its notes a few ticks
before or after the beat, and its chords spread over several ticks. The tokenizer's grid keeps
those as they fall (twelfths of a beat), so a continuation learns "a little early, a little
late" from the seed, its rhythm profile is smeared, and with `include_seed` the seed plays on
as played. A member may ask for the seed quantised instead: each note's start and end go to
the nearest point of a grid of sixteenths and eighth-note triplets (the two grids a written
score uses), notes keep at least one grid step, and what is not a note (tempo changes, metres,
pedals) stays where it is, so the seed lasts as long as before.
"""

from __future__ import annotations

import numpy as np
from symusic import Note, Score

# Grid points per beat: sixteenths (4) and eighth-note triplets (3); their union is what a
# written score can say without tuplets of tuplets.
GRIDS = (4, 3)
# A seed looks performed when this share of its onsets falls off both grids by more than
# OFF_GRID_BEATS (a sequenced seed is exact, a played one rarely is).
PERFORMED_SHARE = 0.5
OFF_GRID_BEATS = 1 / 48


def quantise_score(score: Score) -> Score:
    """A copy of `score` with every note's start and end on the nearest grid point."""
    out = score.copy()
    tpq = out.ticks_per_quarter
    last = score.end()
    for track in out.tracks:
        if not track.note_num():
            continue
        notes = track.notes.numpy()
        start = notes["time"].astype(np.int64)
        end = start + notes["duration"].astype(np.int64)
        new_start = snap_onsets(start, tpq)
        new_end = snap(end, tpq)
        # A note the grid would swallow keeps the smallest step that still sounds it.
        shortest = tpq // max(GRIDS)
        new_end = np.maximum(new_end, new_start + shortest)
        # ...and none outlasts the seed (a last chord snapped later would lengthen it).
        new_end = np.maximum(np.minimum(new_end, last), new_start + 1)
        order = np.lexsort((notes["pitch"], new_start))
        track.notes = Note.from_numpy(
            time=new_start[order].astype(np.int32),
            duration=(new_end - new_start)[order].astype(np.int32),
            pitch=notes["pitch"][order],
            velocity=notes["velocity"][order],
        )
    return out


def snap(ticks: np.ndarray, ticks_per_quarter: int) -> np.ndarray:
    """Each tick moved to the nearest point of the sixteenth or the triplet grid."""
    best = np.zeros_like(ticks)
    best_distance = np.full(ticks.shape, np.iinfo(np.int64).max)
    for per_beat in GRIDS:
        point = np.rint(ticks * per_beat / ticks_per_quarter) * ticks_per_quarter / per_beat
        point = np.rint(point).astype(np.int64)
        distance = np.abs(point - ticks)
        closer = distance < best_distance
        best[closer], best_distance[closer] = point[closer], distance[closer]
    return best


def snap_onsets(ticks: np.ndarray, ticks_per_quarter: int) -> np.ndarray:
    """Onsets moved onto one grid per beat: the one that fits the beat's onsets better (in all,
    ties to sixteenths). A note at a time is too easily fooled: a sixteenth played 24 ticks
    late (of 480) lies nearer the triplet than its own grid point."""
    points, errors = [], []
    for per_beat in GRIDS:
        point = np.rint(
            np.rint(ticks * per_beat / ticks_per_quarter) * ticks_per_quarter / per_beat
        ).astype(np.int64)
        points.append(point)
        errors.append(np.abs(point - ticks))
    beat = np.rint(ticks / (ticks_per_quarter / GRIDS[0])).astype(np.int64) // GRIDS[0]
    beats, index = np.unique(beat, return_inverse=True)
    error_per_beat = [np.bincount(index, weights=e, minlength=len(beats)) for e in errors]
    triplet_beat = error_per_beat[1] < error_per_beat[0]
    return np.where(triplet_beat[index], points[1], points[0])


def looks_performed(score: Score) -> bool:
    """Whether most of the seed's onsets fall between the grids (it was played, not written)."""
    tpq = score.ticks_per_quarter
    onsets = [t.notes.numpy()["time"].astype(np.int64) for t in score.tracks if t.note_num()]
    if not onsets:
        return False
    ticks = np.concatenate(onsets)
    off = np.abs(snap(ticks, tpq) - ticks) > OFF_GRID_BEATS * tpq
    return bool(off.mean() >= PERFORMED_SHARE)
