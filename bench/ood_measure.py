"""What a continuation keeps of its seed, as the out-of-domain bench counts it: one dict of
figures per continuation (engine/evaluation/musical_stats.py has the definitions), and the
loudness of a rendered clip.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from symusic import Score

from bench.ood_seeds import BARS, OodSeed
from engine.audio.loudness import ABSOLUTE_GATE_LUFS, integrated_loudness
from engine.evaluation.musical_stats import (
    DRUMS,
    MIDI_DEFAULT_TEMPO,
    BarNotes,
    Key,
    Notes,
    bar_lines,
    bar_patterns,
    bars_written,
    drum_bar_share,
    find_key,
    in_scale_share,
    instruments,
    instruments_kept,
    loud_share,
    onset_profile,
    pickup_bars,
    pitch_class_distance,
    profile_distance,
    repeated_bar_share,
    reused_bar_share,
    seed_consistency,
    tempo_at,
)

DENSITY_TOLERANCE = 1.3  # notes per bar within this factor of the seed's
LEVEL_UNIT = "LU"  # clips and seam sides compared by their integrated loudness (BS.1770)

Figures = dict[str, float | bool | None]


@dataclass(frozen=True)
class SeedFacts:
    """What every continuation of one seed is measured against, computed once."""

    seed: OodSeed
    score: Score
    key: Key | None
    instruments: frozenset[int]
    notes: BarNotes
    patterns: list[frozenset]
    profile: np.ndarray
    pitched_per_bar: float  # notes per bar, drums left out
    reference_notes: Notes | None

    @classmethod
    def of(cls, seed: OodSeed) -> SeedFacts:
        score = seed.score
        notes, pitched = BarNotes.of(score, seed.bars), Notes.of(score)
        return cls(
            seed,
            score,
            find_key(pitched),
            instruments(score),
            notes,
            bar_patterns(notes),
            onset_profile(notes),
            len(pitched) / seed.bars,
            Notes.of(seed.reference) if seed.reference is not None else None,
        )

    @property
    def drums(self) -> bool:
        return DRUMS in self.instruments

    @property
    def loud_share(self) -> float | None:
        return loud_share(self.notes)

    @property
    def tempo(self) -> float:
        """Quarter notes per minute at the seed's end, where the continuation starts."""
        return tempo_at(self.score, self.score.end()) or MIDI_DEFAULT_TEMPO


def measure(facts: SeedFacts, continuation: Score) -> Figures:
    """Every figure of one continuation of `facts.seed` (BARS bars asked for)."""
    notes = BarNotes.of(continuation, BARS)
    pitched = Notes.of(continuation)
    kept = seed_consistency(facts.score, continuation)
    density = notes.per_bar() / facts.notes.per_bar()
    return {
        # The bars asked come after the rest of the seed's last bar when it stopped early.
        "full_bars": bars_written(continuation) - pickup_bars(continuation) == BARS,
        "drums_kept": drum_bar_share(notes) if facts.drums else None,
        "instruments_kept": instruments_kept(facts.score, continuation),
        "only_seed_instruments": instruments(continuation) <= facts.instruments,
        "in_scale": in_scale_share(pitched, facts.key) if facts.key else None,
        "key": kept["key"],
        "key_signature": kept["key_signature"],
        "density": density,
        "density_within": 1 / DENSITY_TOLERANCE <= density <= DENSITY_TOLERANCE,
        "pitched_density": (
            len(pitched) / BARS / facts.pitched_per_bar if facts.pitched_per_bar else None
        ),
        "rhythm": profile_distance(facts.profile, onset_profile(notes)),
        "repeated": repeated_bar_share(bar_patterns(notes)),
        "reused": reused_bar_share(bar_patterns(notes), facts.patterns),
        "loud": loud_share(notes),
        "pitch_class_distance": (
            pitch_class_distance(pitched, facts.reference_notes)
            if facts.reference_notes is not None
            else None
        ),
    }


def seconds_at(score: Score, tick: int) -> float:
    """Where `tick` falls in seconds, through the score's tempo changes."""
    tpq = score.ticks_per_quarter
    seconds, time, qpm = 0.0, 0, MIDI_DEFAULT_TEMPO
    for tempo in sorted(score.tempos, key=lambda t: t.time):
        if tempo.time >= tick:
            break
        seconds += (tempo.time - time) / tpq * 60 / qpm
        time, qpm = tempo.time, tempo.qpm
    return seconds + (tick - time) / tpq * 60 / qpm


def seed_seconds(facts: SeedFacts) -> float:
    """The seed's length in seconds, as a MIDI player plays its bars."""
    return seconds_at(facts.score, bar_lines(facts.score, facts.seed.bars)[-1])


def continuation_seconds(facts: SeedFacts) -> float:
    """BARS bars in the seed's last metre at the tempo in force at its end."""
    score, end = facts.score, facts.score.end()
    metre = Score(score.ticks_per_quarter)
    metre.time_signatures = [ts for ts in score.time_signatures if ts.time <= end][-1:]
    for ts in metre.time_signatures:
        ts.time = 0
    beats = bar_lines(metre, BARS)[-1] / score.ticks_per_quarter
    return beats * 60 / facts.tempo


def read_audio(data: bytes) -> tuple[np.ndarray, int]:
    pcm, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return pcm, rate


def clip_loudness(pcm: np.ndarray, rate: int) -> float:
    """Integrated loudness in LUFS (engine/audio/loudness.py's meter, as the engine normalises);
    silence (or less than a block) reads as the absolute gate, so that a silent clip counts
    as very quiet, not as infinitely."""
    return max(integrated_loudness(pcm, rate), ABSOLUTE_GATE_LUFS)
