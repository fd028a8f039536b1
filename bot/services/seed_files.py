"""A member's uploaded MIDI file: refused early when it cannot be a seed, else its bytes.

Its size and type are checked before downloading (Discord tells both), the content in a
worker thread with the engine's own seed reader (symusic; no torch), so a bad file is refused
before any row is written or any engine time is spent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import PurePath

import discord

from bot.db.queries import SEED_MAX_BYTES
from bot.errors import UserFacingError
from bot.ui.text import escaped, shortened
from engine.api.seed_midi import read_seed, seed_seconds

# What MIDI files are called; any other name with a content type Discord recognised as
# something else (a recording, a picture, text) is refused before it is downloaded.
MIDI_SUFFIXES = frozenset({".mid", ".midi", ".kar", ".smf", ".rmi"})
MIDI_CONTENT_TYPES = frozenset(
    {"audio/midi", "audio/mid", "audio/x-midi", "audio/sp-midi", "application/x-midi"}
)
# Discord's label for bytes it could not identify: such a file may still be MIDI.
UNKNOWN_CONTENT_TYPE = "application/octet-stream"
# A file name is the member's own text: shown escaped, and never longer than this.
MAX_SHOWN_NAME = 60


@dataclass(frozen=True, slots=True)
class MidiFile:
    data: bytes
    notes: int
    seconds: float


def short_name(filename: str) -> str:
    """A file name of at most MAX_SHOWN_NAME characters (raw: escape it where it is shown)."""
    return shortened(filename, MAX_SHOWN_NAME)


def shown_name(filename: str) -> str:
    return escaped(short_name(filename))


def check_attachment(attachment: discord.Attachment) -> None:
    """What can be told without downloading: the size, and a type that is not MIDI."""
    name = shown_name(attachment.filename)
    if attachment.size > SEED_MAX_BYTES:
        raise UserFacingError(
            f'"{name}" is {_size(attachment.size)}; a seed must be under '
            f"{_size(SEED_MAX_BYTES)} (a motif of a few bars is a few KB)."
        )
    suffix = PurePath(attachment.filename).suffix.lower()
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if (
        suffix not in MIDI_SUFFIXES
        and content_type
        and content_type not in MIDI_CONTENT_TYPES
        and content_type != UNKNOWN_CONTENT_TYPE
    ):
        raise UserFacingError(
            f'"{name}" is not a MIDI file (Discord says it is {content_type}); a seed is a '
            "MIDI file (.mid), as music software exports it."
        )


async def read_midi_attachment(attachment: discord.Attachment, *, max_notes: int) -> MidiFile:
    """The attachment's MIDI, validated; UserFacingError (or BadSeed) saying what is wrong.
    `max_notes`: the engine's seed note limit (MOTIF_MAX_SEED_NOTES)."""
    check_attachment(attachment)
    try:
        data = await attachment.read()
    except discord.HTTPException:
        raise UserFacingError(
            f'Discord would not give me "{shown_name(attachment.filename)}"; '
            "please upload it again."
        ) from None
    return await asyncio.to_thread(check_midi, data, max_notes=max_notes)


def check_midi(data: bytes, *, max_notes: int) -> MidiFile:
    """Validate MIDI bytes (blocking: call it in a thread)."""
    score = read_seed(data, max_notes=max_notes)
    return MidiFile(data=data, notes=score.note_num(), seconds=seed_seconds(score))


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n // 1024} KB"
