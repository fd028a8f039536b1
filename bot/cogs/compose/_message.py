"""The one message that shows a composition: audio clips, the piano roll and its facts."""

from __future__ import annotations

import io

import discord

from bot.cogs._versions import version_name
from bot.cogs.compose._job import AS_IN_SEED, ComposeJob
from bot.engine_port import ComposeResult

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
    composition_id: int, job: ComposeJob, result: ComposeResult, *, model_version_id: int | None
) -> discord.Embed:
    """`model_version_id`: the server's version that composed it (None: the base model)."""
    e = discord.Embed(
        title=f"Composition #{composition_id}",
        description=f"Seed: {job.seed_label}",
        colour=discord.Colour.blurple(),
    )
    e.add_field(name="Bars", value=str(job.bars))
    e.add_field(name="Candidates", value=str(len(result.candidates)))
    e.add_field(name="Temperature", value=f"{job.temperature:g}")
    e.add_field(name="Tempo", value=f"{job.tempo} bpm" if job.tempo else "as in the seed")
    instrument = "as in the seed" if job.instrument == AS_IN_SEED else job.instrument
    e.add_field(name="Instrument", value=instrument)
    e.add_field(name="Model", value=version_name(model_version_id))
    if job.include_seed and job.seed_midi is not None:
        e.add_field(name="Clips", value="start with the seed", inline=False)
    notes = [
        f"Candidate {i}: {c.audio_note}"
        for i, c in enumerate(result.candidates, start=1)
        if c.audio_note
    ]
    if notes:
        # The engine lowered the quality or shortened a clip to fit the upload limit; say so.
        e.add_field(name="Audio fitted to the upload limit", value="\n".join(notes), inline=False)
    e.set_image(url=f"attachment://{PIANOROLL}")
    e.set_footer(
        text=f"Vote for your favourite. Continue grows the piece; "
        f"/piece export composition:{composition_id} gets it whole."
    )
    return e
