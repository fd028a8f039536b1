"""The one message that shows a composition: audio clips, the piano roll and its facts."""

from __future__ import annotations

import io
from typing import Protocol

import discord
import pretty_midi

from bot.ui.audio_text import upload_limit_text
from bot.ui.text import escaped
from bot.ui.versions import version_name
from engine.api.instruments import listed_name
from engine.api.schema import DRUMS, CandidateResult, ComposeRequest, ComposeResult


class ComposeOptions(Protocol):
    """What the message shows of a composition's request (bot.services.composing.ComposeJob)."""

    @property
    def options(self) -> ComposeRequest: ...
    @property
    def seed_label(self) -> str: ...


PIANOROLL = "pianoroll.png"
# Room kept for the piano roll and the request's own overhead within the upload limit.
PIANOROLL_RESERVE_BYTES = 1024 * 1024
# Below this an OGG of a few bars cannot sound like anything; the engine shortens it instead.
MIN_AUDIO_BYTES = 64 * 1024


def audio_budget(upload_limit: int, candidates: int) -> int:
    """Bytes each OGG may take so that the message's files fit the interaction's upload limit
    (Discord reports it per interaction: it grows with the server's boosts)."""
    return max(MIN_AUDIO_BYTES, (upload_limit - PIANOROLL_RESERVE_BYTES) // max(1, candidates))


def files(result: ComposeResult) -> list[discord.File]:
    clips = [
        discord.File(io.BytesIO(c.audio), filename=f"candidate-{i}.ogg")
        for i, c in enumerate(result.candidates, start=1)
    ]
    return [*clips, discord.File(io.BytesIO(result.pianoroll), filename=PIANOROLL)]


def embed(
    composition_id: int,
    job: ComposeOptions,
    result: ComposeResult,
    *,
    model_version_id: int | None,
    upload_limit: int,
) -> discord.Embed:
    """`model_version_id`: the server's version that composed it (None: the base model);
    `upload_limit`: the interaction's, in bytes (named when a clip had to fit it)."""
    e = discord.Embed(
        title=f"Composition #{composition_id}",
        # The label holds a member's file or seed name.
        description=f"Seed: {escaped(job.seed_label)}",
        colour=discord.Colour.blurple(),
    )
    options = job.options
    e.add_field(name="Bars", value=str(options.bars))
    e.add_field(name="Candidates", value=str(len(result.candidates)))
    e.add_field(name="Temperature", value=f"{options.temperature:g}")
    e.add_field(name="Tempo", value=tempo_text(options, result))
    e.add_field(name="Instrument", value=instrument_text(options, result))
    e.add_field(name="Model", value=version_name(model_version_id))
    if options.include_seed and options.seed_midi is not None:
        e.add_field(name="Clips", value="start with the seed", inline=False)
    notes = [
        f"Candidate {i}: {note}"
        for i, c in enumerate(result.candidates, start=1)
        if (note := fitted_text(c, upload_limit))
    ]
    if notes:
        e.add_field(name="Audio fitted to the upload limit", value="\n".join(notes), inline=False)
    short = [
        f"Candidate {i} stopped after {c.bars} of {options.bars} bars"
        for i, c in enumerate(result.candidates, start=1)
        if c.bars is not None and c.bars < options.bars
    ]
    if short:
        # Should not happen (the engine's grammar leaves every bar a way to close): if a
        # candidate still ended early, the member hears why its clip is short.
        e.add_field(name="Shorter than asked", value="\n".join(short), inline=False)
    e.set_image(url=f"attachment://{PIANOROLL}")
    e.set_footer(
        text=f"Vote for your favourite. Continue grows the piece; "
        f"/piece export composition:{composition_id} gets it whole."
    )
    return e


def tempo_text(options: ComposeRequest, result: ComposeResult) -> str:
    """The tempo the candidates were written at, and whose it was."""
    if options.tempo:
        return f"{options.tempo:.0f} bpm"  # a member's: whole bpm
    if result.tempo is None:  # an engine that does not say
        return "as in the seed" if options.seed_midi is not None else "the composer's"
    bpm = f"{result.tempo:.0f} bpm"
    return f"{bpm} (the seed's)" if options.seed_midi is not None else bpm


# Instruments named in the embed before "and N more".
MAX_NAMED_INSTRUMENTS = 4


def instrument_text(options: ComposeRequest, result: ComposeResult) -> str:
    """The instrument asked for; else the seed's; else what the model chose to play."""
    if options.program is not None:
        listed = listed_name(options.program)
        return listed.replace("-", " ") if listed else instrument_name(options.program)
    if options.seed_midi is not None:
        return "as in the seed"
    heard = list(dict.fromkeys(p for c in result.candidates for p in c.programs))
    if not heard:
        return "chosen by the composer"
    names = [instrument_name(p) for p in heard[:MAX_NAMED_INSTRUMENTS]]
    if len(heard) > MAX_NAMED_INSTRUMENTS:
        names.append(f"{len(heard) - MAX_NAMED_INSTRUMENTS} more")
    return ", ".join(names)


def instrument_name(program: int) -> str:
    """A GM program as members know it: 'acoustic grand piano', 'drums'."""
    if program == DRUMS:
        return "drums"
    if not 0 <= program <= 127:
        return f"program {program}"
    name: str = pretty_midi.program_to_instrument_name(program)
    return name.lower()


def fitted_text(candidate: CandidateResult, upload_limit: int) -> str | None:
    """What a clip gave up to fit the server's upload limit, in members' words."""
    limit = upload_limit_text(upload_limit)
    if candidate.audio_cut_from is not None:
        return (
            f"lower audio quality, and shortened from {candidate.audio_cut_from:.0f} s to "
            f"{candidate.seconds:.0f} s, to fit {limit}"
        )
    if candidate.audio_quality_lowered:
        return f"lower audio quality to fit {limit}"
    return None
