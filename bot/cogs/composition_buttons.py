"""The composition's buttons that keep what it made: MIDI (every candidate's file) and Save
(a candidate as a server seed). Continue and Reroll compose: they are in the compose cog.

DynamicItems: discord.py matches a click's custom_id against these templates in any bot
process, so buttons posted before a restart keep working.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.db import get_composition, save_candidate_as_seed
from bot.errors import report, reporting
from bot.ui.views import MIDI_TEMPLATE, SAVE_TEMPLATE, midi_id, save_id

if TYPE_CHECKING:
    from bot.app import MotifBot

# discord.py types Item.callback and Modal.on_submit for an interaction of any client, so an
# override that names MotifBot is flagged [override]; ours only ever get MotifBot's, hence the
# `type: ignore[override]` on them.
Interaction = discord.Interaction["MotifBot"]


def _guild(interaction: Interaction) -> int:
    if interaction.guild_id is None:  # buttons only exist on server messages
        raise RuntimeError("a composition button was clicked outside a server")
    return interaction.guild_id


class MidiButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=MIDI_TEMPLATE):
    """Every candidate's MIDI file, only for the member who asked."""

    def __init__(self, composition_id: int) -> None:
        super().__init__(discord.ui.Button(custom_id=midi_id(composition_id)))
        self.composition_id = composition_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> MidiButton:
        return cls(int(match["composition"]))

    async def callback(self, interaction: Interaction) -> None:  # type: ignore[override]
        await reporting(interaction, self._send(interaction))

    async def _send(self, interaction: Interaction) -> None:
        bot, guild_id = interaction.client, _guild(interaction)
        async with bot.sessions() as session:
            composition = await get_composition(
                session, guild_id=guild_id, composition_id=self.composition_id, with_midi=True
            )
        files = [
            discord.File(
                io.BytesIO(c.midi),
                filename=f"composition-{composition.id}-candidate-{c.position}.mid",
            )
            for c in composition.candidates
        ]
        await interaction.response.send_message(
            f"The MIDI of composition #{composition.id}:", files=files, ephemeral=True
        )


class SaveSeedModal(discord.ui.Modal, title="Save as a server seed"):
    name: discord.ui.TextInput[SaveSeedModal] = discord.ui.TextInput(
        label="Seed name", placeholder="e.g. rainy waltz", max_length=64
    )

    def __init__(self, candidate_id: int) -> None:
        super().__init__(timeout=600)
        self.candidate_id = candidate_id

    async def on_submit(self, interaction: Interaction) -> None:  # type: ignore[override]
        bot, guild_id = interaction.client, _guild(interaction)
        async with bot.sessions() as session:
            seed = await save_candidate_as_seed(
                session,
                guild_id=guild_id,
                candidate_id=self.candidate_id,
                name=self.name.value,
                uploader_id=interaction.user.id,
            )
        await interaction.response.send_message(
            f'Saved as the seed "{seed.name}". Use it with /compose saved_seed.', ephemeral=True
        )
        await bot.tuning.notice_activity(guild_id=guild_id, channel_id=interaction.channel_id)

    # Modal.on_error takes no item, unlike the BaseView.on_error it overrides (discord.py's
    # design, Rapptz/discord.py#9816): mypy flags every override of it against BaseView.
    async def on_error(  # type: ignore[override]
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        await report(interaction, error)


class SaveButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=SAVE_TEMPLATE):
    """Asks a name, then saves candidate k as one of the server's seeds."""

    def __init__(self, candidate_id: int) -> None:
        super().__init__(discord.ui.Button(custom_id=save_id(candidate_id)))
        self.candidate_id = candidate_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> SaveButton:
        return cls(int(match["candidate"]))

    async def callback(self, interaction: Interaction) -> None:  # type: ignore[override]
        await reporting(
            interaction, interaction.response.send_modal(SaveSeedModal(self.candidate_id))
        )


class CompositionButtons(commands.Cog):
    """Holds no commands: MIDI and Save are buttons under each composition."""


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(CompositionButtons())
    bot.add_dynamic_items(MidiButton, SaveButton)
