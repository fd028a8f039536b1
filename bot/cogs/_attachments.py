"""A member's uploaded MIDI file: refused early when it cannot be a seed, else its bytes.

The size is checked before downloading (Discord tells it), the content in a worker thread
with the engine's own seed reader (symusic; no torch), so a bad file is refused before any
row is written or any engine time is spent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import discord

from bot.db.queries import SEED_MAX_BYTES
from bot.errors import UserFacingError
from engine.seed import read_seed


@dataclass(frozen=True, slots=True)
class MidiFile:
    data: bytes
    notes: int
    seconds: float


async def read_midi_attachment(attachment: discord.Attachment) -> MidiFile:
    """The attachment's MIDI, validated; UserFacingError (or BadSeed) saying what is wrong."""
    if attachment.size > SEED_MAX_BYTES:
        raise UserFacingError(
            f'"{attachment.filename}" is {_size(attachment.size)}; a seed must be under '
            f"{_size(SEED_MAX_BYTES)} (a motif of a few bars is a few KB)."
        )
    try:
        data = await attachment.read()
    except discord.HTTPException:
        raise UserFacingError(
            f'Discord would not give me "{attachment.filename}"; please upload it again.'
        ) from None
    return await asyncio.to_thread(check_midi, data)


def check_midi(data: bytes) -> MidiFile:
    """Validate MIDI bytes (blocking: call it in a thread)."""
    score = read_seed(data)
    return MidiFile(data=data, notes=score.note_num(), seconds=float(score.to("second").end()))


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n // 1024} KB"
