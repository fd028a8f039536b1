"""The composition's buttons besides voting: continue, reroll, MIDI, save as seed.

DynamicItems: discord.py matches a click's custom_id against these templates in any bot
process, so buttons posted before a restart keep working.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

import discord

from bot.cogs.compose._flow import compose_and_post
from bot.cogs.compose._job import ComposeJob
from bot.db import get_candidate, get_composition, save_candidate_as_seed
from bot.errors import report, reporting
from bot.views import (
    CONTINUE_TEMPLATE,
    MIDI_TEMPLATE,
    REROLL_TEMPLATE,
    SAVE_TEMPLATE,
    continue_id,
    midi_id,
    reroll_id,
    save_id,
)

if TYPE_CHECKING:
    from bot.app import MotifBot


def _bot(interaction: discord.Interaction) -> MotifBot:
    return interaction.client  # type: ignore[return-value]


def _guild(interaction: discord.Interaction) -> int:
    if interaction.guild_id is None:  # buttons only exist on server messages
        raise RuntimeError("a composition button was clicked outside a server")
    return interaction.guild_id


class ContinueButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=CONTINUE_TEMPLATE):
    """Candidate k's music becomes the seed of the next round of the piece."""

    def __init__(self, candidate_id: int) -> None:
        super().__init__(discord.ui.Button(custom_id=continue_id(candidate_id)))
        self.candidate_id = candidate_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ContinueButton:
        return cls(int(match["candidate"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await reporting(interaction, self._continue(interaction))

    async def _continue(self, interaction: discord.Interaction) -> None:
        bot, guild_id = _bot(interaction), _guild(interaction)

        async def resolve() -> ComposeJob:
            async with bot.sessions() as session:
                candidate = await get_candidate(
                    session, guild_id=guild_id, candidate_id=self.candidate_id
                )
                parent = await get_composition(
                    session, guild_id=guild_id, composition_id=candidate.composition_id
                )
            label = f"continues candidate {candidate.position} of composition #{parent.id}"
            # The new round holds only new music: the piece is the rounds laid end to end.
            params = {**parent.params, "include_seed": False, "seed_label": label}
            return ComposeJob.from_params(
                params, seed_midi=candidate.midi, parent_candidate_id=candidate.id
            )

        await compose_and_post(bot, interaction, resolve)


class RerollButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=REROLL_TEMPLATE):
    """The same request again, with new samples."""

    def __init__(self, composition_id: int) -> None:
        super().__init__(discord.ui.Button(custom_id=reroll_id(composition_id)))
        self.composition_id = composition_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RerollButton:
        return cls(int(match["composition"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await reporting(interaction, self._reroll(interaction))

    async def _reroll(self, interaction: discord.Interaction) -> None:
        bot, guild_id = _bot(interaction), _guild(interaction)

        async def resolve() -> ComposeJob:
            async with bot.sessions() as session:
                old = await get_composition(
                    session, guild_id=guild_id, composition_id=self.composition_id
                )
                seed_midi = old.seed_midi
                if old.parent_candidate_id is not None:
                    parent = await get_candidate(
                        session, guild_id=guild_id, candidate_id=old.parent_candidate_id
                    )
                    seed_midi = parent.midi
            return ComposeJob.from_params(
                old.params,
                seed_midi=seed_midi,
                seed_id=old.seed_id,
                parent_candidate_id=old.parent_candidate_id,
            )

        await compose_and_post(bot, interaction, resolve)


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

    async def callback(self, interaction: discord.Interaction) -> None:
        await reporting(interaction, self._send(interaction))

    async def _send(self, interaction: discord.Interaction) -> None:
        bot, guild_id = _bot(interaction), _guild(interaction)
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

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot, guild_id = _bot(interaction), _guild(interaction)
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

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
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

    async def callback(self, interaction: discord.Interaction) -> None:
        await reporting(
            interaction, interaction.response.send_modal(SaveSeedModal(self.candidate_id))
        )


BUTTONS = (ContinueButton, RerollButton, MidiButton, SaveButton)
