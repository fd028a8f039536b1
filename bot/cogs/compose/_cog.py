"""/compose: options in Discord's own limits, then the shared flow."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs._attachments import read_midi_attachment, short_name
from bot.cogs.compose._flow import compose_and_post
from bot.cogs.compose._job import AS_IN_SEED, ComposeJob
from bot.db import autocomplete_seed_names, get_seed
from bot.errors import UserFacingError
from engine.form import DEFAULT_FORM, FORMS
from engine.instruments import INSTRUMENTS
from engine.limits import (
    BARS,
    CANDIDATES,
    DEFAULT_BARS,
    DEFAULT_CANDIDATES,
    DEFAULT_TEMPERATURE,
    TEMPERATURE,
    TEMPO_BPM,
)

if TYPE_CHECKING:
    from bot.app import MotifBot

# The options' ranges are the engine's (engine.limits), so Discord refuses what the engine
# would; the tempo is whole bpm.
Bars = app_commands.Range[int, BARS.low, BARS.high]
Candidates = app_commands.Range[int, CANDIDATES.low, CANDIDATES.high]
Temperature = app_commands.Range[float, TEMPERATURE.low, TEMPERATURE.high]
Tempo = app_commands.Range[int, int(TEMPO_BPM.low), int(TEMPO_BPM.high)]

# Discord shows at most 25 choices: "as in the seed" plus the engine's short list.
INSTRUMENT_CHOICES = [app_commands.Choice(name="as in the seed", value=AS_IN_SEED)] + [
    app_commands.Choice(name=name.replace("-", " "), value=name) for name in INSTRUMENTS
][:24]
FORM_NAMES = {"return": "the seed's theme returns", "free": "free (no planned repeats)",
              "AABA": "AABA", "ABAB": "ABAB"}
FORM_CHOICES = [app_commands.Choice(name=FORM_NAMES[f], value=f) for f in FORMS]


async def saved_seed_names(
    bot: MotifBot, interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """This server's seeds starting with what the member typed (never another server's)."""
    if interaction.guild_id is None:
        return []
    async with bot.sessions() as session:
        names = await autocomplete_seed_names(
            session, guild_id=interaction.guild_id, prefix=current
        )
    return [app_commands.Choice(name=name, value=name) for name in names]


class ComposeCog(commands.Cog):
    def __init__(self, bot: MotifBot) -> None:
        self.bot = bot

    @app_commands.command(name="compose", description="Compose a few continuations to vote on.")
    @app_commands.guild_only()
    @app_commands.describe(
        seed="A short MIDI file to continue",
        saved_seed="One of this server's saved seeds",
        bars="Length of each candidate in bars",
        candidates="How many candidates to write",
        temperature="Lower is safer, higher is wilder",
        tempo="Beats per minute (default: the seed's)",
        instrument="Who plays the new notes",
        include_seed="Start each clip with the seed itself",
        form="Which bars come back (default: the seed's theme returns)",
        follow_key="Stay in the seed's key (default: yes)",
    )
    @app_commands.choices(instrument=INSTRUMENT_CHOICES, form=FORM_CHOICES)
    async def compose(
        self,
        interaction: discord.Interaction,
        seed: discord.Attachment | None = None,
        saved_seed: str | None = None,
        bars: Bars = DEFAULT_BARS,
        candidates: Candidates = DEFAULT_CANDIDATES,
        temperature: Temperature = DEFAULT_TEMPERATURE,
        tempo: Tempo | None = None,
        instrument: str = AS_IN_SEED,
        include_seed: bool = False,
        form: str = DEFAULT_FORM,
        follow_key: bool = True,
    ) -> None:
        if seed is not None and saved_seed is not None:
            raise UserFacingError("Give either an attached seed or a saved seed, not both.")
        guild_id = interaction.guild_id
        assert guild_id is not None

        async def resolve() -> ComposeJob:
            options = dict(
                bars=bars,
                candidates=candidates,
                temperature=temperature,
                tempo=tempo,
                instrument=instrument,
                include_seed=include_seed,
                form=form,
                follow_key=follow_key,
            )
            if seed is not None:
                midi = await read_midi_attachment(
                    seed, max_notes=self.bot.settings.engine.work.max_seed_notes
                )
                label = f'attached "{short_name(seed.filename)}"'
                return ComposeJob(seed_midi=midi.data, seed_label=label, **options).fresh()
            if saved_seed is not None:
                async with self.bot.sessions() as session:
                    stored = await get_seed(session, guild_id=guild_id, name=saved_seed)
                return ComposeJob(
                    seed_midi=stored.midi,
                    seed_id=stored.id,
                    seed_label=f'saved seed "{stored.name}"',
                    **options,
                ).fresh()
            return ComposeJob(seed_midi=None, seed_label="none (from scratch)", **options).fresh()

        await compose_and_post(self.bot, interaction, resolve)

    @compose.autocomplete("saved_seed")
    async def _saved_seed(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await saved_seed_names(self.bot, interaction, current)
