"""The General MIDI instruments members can pick by name (light: no torch)."""

from __future__ import annotations

# A short list for Discord's choice menu (at most 25); any GM program number also works.
INSTRUMENTS: dict[str, int] = {
    "piano": 0,
    "electric-piano": 4,
    "harpsichord": 6,
    "vibraphone": 11,
    "organ": 19,
    "guitar": 24,
    "electric-guitar": 27,
    "bass": 33,
    "violin": 40,
    "cello": 42,
    "strings": 48,
    "choir": 52,
    "trumpet": 56,
    "french-horn": 60,
    "saxophone": 65,
    "oboe": 68,
    "clarinet": 71,
    "flute": 73,
    "recorder": 74,
    "synth-lead": 80,
    "synth-pad": 88,
    "harp": 46,
    "accordion": 21,
}
_LISTED = {program: name for name, program in INSTRUMENTS.items()}


def listed_name(program: int) -> str | None:
    """The short list's name of a GM program ("french-horn"), None when it is not listed."""
    return _LISTED.get(program)


def program_of(name_or_number: str) -> int:
    key = name_or_number.strip().lower()
    if key in INSTRUMENTS:
        return INSTRUMENTS[key]
    if key.isdigit() and 0 <= int(key) <= 127:
        return int(key)
    raise ValueError(
        f"unknown instrument {name_or_number!r}: use a GM program 0-127 or one of "
        f"{', '.join(INSTRUMENTS)}"
    )


# The sixteen General MIDI families of eight programs each, and drums (program -1 in tokens).
GM_FAMILIES = (
    "piano",
    "chromatic percussion",
    "organ",
    "guitar",
    "bass",
    "strings",
    "ensemble",
    "brass",
    "reed",
    "pipe",
    "synth lead",
    "synth pad",
    "synth effects",
    "ethnic",
    "percussive",
    "sound effects",
)
DRUMS = "drums"


def family_of(program: int, *, is_drum: bool = False) -> str:
    """The GM family of a program (0-127); drums for a drum track or program -1."""
    if is_drum or program == -1:
        return DRUMS
    if not 0 <= program <= 127:
        raise ValueError(f"program must be within 0 and 127, or -1 for drums (received {program})")
    return GM_FAMILIES[program // 8]
