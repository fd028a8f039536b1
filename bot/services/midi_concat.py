"""A piece's rounds laid end to end as one MIDI file (blocking: run it in a thread).

Each round starts on the bar line after the previous round's last note, because the engine
continues a seed from its next bar; each round keeps its own tempo and metre.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# The tick-based classes the symusic.Score, Track, ... factories make, which symusic types.
from symusic.core import NoteTick, ScoreTick, TempoTick, TimeSignatureTick, TrackTick


def bar_ticks(score: ScoreTick) -> int:
    """Ticks per bar in the metre in force at the score's end (4/4 when it has none)."""
    numerator, denominator = 4, 4
    if len(score.time_signatures):
        last = score.time_signatures[-1]
        numerator, denominator = last.numerator, last.denominator
    return score.ticks_per_quarter * 4 * numerator // denominator


def length_ticks(score: ScoreTick) -> int:
    """The score's length in whole bars (at least one), in ticks."""
    bar = bar_ticks(score)
    return max(1, math.ceil(score.end() / bar)) * bar


def concatenate(midis: Sequence[bytes]) -> bytes:
    """One MIDI file of `midis` in order; tracks with the same instrument are merged."""
    if not midis:
        raise ValueError("a piece has at least one round (received none)")
    scores = [ScoreTick.from_midi(data) for data in midis]
    tpq = max(score.ticks_per_quarter for score in scores)
    out = ScoreTick(tpq)
    tracks: dict[tuple[int, bool], TrackTick] = {}
    offset = 0
    for score in scores:
        if score.ticks_per_quarter != tpq:
            score = score.resample(tpq, min_dur=1)
        for tempo in score.tempos:
            out.tempos.append(TempoTick(tempo.time + offset, tempo.qpm))
        for ts in score.time_signatures:
            out.time_signatures.append(
                TimeSignatureTick(ts.time + offset, ts.numerator, ts.denominator)
            )
        for track in score.tracks:
            key = (track.program, track.is_drum)
            if key not in tracks:
                tracks[key] = TrackTick(track.name, track.program, track.is_drum)
                out.tracks.append(tracks[key])
                # symusic appends a copy: keep the score's own track to add notes to.
                tracks[key] = out.tracks[-1]
            target = tracks[key]
            for note in track.notes:
                target.notes.append(
                    NoteTick(note.time + offset, note.duration, note.pitch, note.velocity)
                )
        offset += length_ticks(score)
    return out.dumps_midi()
