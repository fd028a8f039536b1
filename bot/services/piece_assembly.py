"""A piece as files: its whole MIDI, and its audio in parts of whole rounds (blocking: run it
in a thread).

The engine makes at most MOTIF_MAX_RENDER_SECONDS of audio per job (its memory stays bounded),
so a long piece's audio comes in parts, each a run of whole rounds that plays at most that long:
parts start on a round's first bar, never mid-phrase. A single round longer than that is a
part of its own, and the engine cuts it (and says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from symusic.core import ScoreTick

from bot.services.midi_concat import concatenate, length_ticks

# Parts of audio one export makes at most (30 minutes); the rest of a longer piece is in its
# MIDI only, and the member is told.
MAX_AUDIO_PARTS = 6
DEFAULT_QPM = 120.0  # MIDI's tempo when a file sets none


@dataclass(frozen=True, slots=True)
class AudioPart:
    first_round: int  # 1-based, as members count rounds
    last_round: int
    midi: bytes


@dataclass(frozen=True, slots=True)
class PieceFiles:
    midi: bytes  # every round
    parts: list[AudioPart]  # the audio to make, in order
    rounds: int

    @property
    def rounds_with_audio(self) -> int:
        return self.parts[-1].last_round if self.parts else 0


def round_seconds(midi: bytes) -> float:
    """How long a round plays to its last bar line (each round keeps one tempo)."""
    score = ScoreTick.from_midi(midi)
    qpm = score.tempos[-1].qpm if len(score.tempos) else DEFAULT_QPM
    return length_ticks(score) / score.ticks_per_quarter * 60.0 / qpm


def piece_files(
    rounds: Sequence[bytes],
    *,
    part_seconds: float,
    max_parts: int = MAX_AUDIO_PARTS,
) -> PieceFiles:
    """The whole piece's MIDI and its audio parts (at most `max_parts`, each playing at most
    `part_seconds`)."""
    spans: list[tuple[int, int]] = []  # [first, last) round indices of each part
    start, length = 0, 0.0
    for i, midi in enumerate(rounds):
        seconds = round_seconds(midi)
        if i > start and length + seconds > part_seconds:
            spans.append((start, i))
            start, length = i, 0.0
        length += seconds
    spans.append((start, len(rounds)))
    whole = concatenate(rounds)
    parts = [
        AudioPart(first + 1, last, whole if len(spans) == 1 else concatenate(rounds[first:last]))
        for first, last in spans[:max_parts]
    ]
    return PieceFiles(midi=whole, parts=parts, rounds=len(rounds))
