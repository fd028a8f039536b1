"""Vote buttons: one vote per member per composition; tallies live on the button labels."""

from __future__ import annotations

import asyncio
import re
import weakref
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.db import cast_vote, get_tallies
from bot.errors import reporting
from bot.ui.views import VOTE_TEMPLATE, composition_view, vote_id, vote_text

if TYPE_CHECKING:
    from bot.app import MotifBot

# discord.py types Item.callback for an interaction of any client, so an override that names
# MotifBot is flagged [override]; ours only ever get MotifBot's, hence the
# `type: ignore[override]` on them.
Interaction = discord.Interaction["MotifBot"]

# One lock per composition message: concurrent clicks edit it one after the other, each
# with tallies read inside the lock, so the last edit always shows the latest count.
_message_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()


class VoteButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=VOTE_TEMPLATE):
    def __init__(self, composition_id: int, candidate_id: int) -> None:
        super().__init__(discord.ui.Button(custom_id=vote_id(composition_id, candidate_id)))
        self.composition_id = composition_id
        self.candidate_id = candidate_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> VoteButton:
        return cls(int(match["composition"]), int(match["candidate"]))

    async def callback(self, interaction: Interaction) -> None:  # type: ignore[override]
        await reporting(interaction, self._vote(interaction))

    async def _vote(self, interaction: Interaction) -> None:
        bot = interaction.client
        guild_id = interaction.guild_id
        if guild_id is None:
            raise RuntimeError("a vote button was clicked outside a server")
        lock = _message_locks.setdefault(self.composition_id, asyncio.Lock())
        async with lock:
            async with bot.sessions() as session:
                result = await cast_vote(
                    session,
                    guild_id=guild_id,
                    composition_id=self.composition_id,
                    candidate_id=self.candidate_id,
                    user_id=interaction.user.id,
                )
                tallies = await get_tallies(
                    session, guild_id=guild_id, composition_id=self.composition_id
                )
            view = composition_view(self.composition_id, list(tallies), tallies)
            await interaction.response.edit_message(view=view)
        position = list(tallies).index(self.candidate_id) + 1
        await interaction.followup.send(vote_text(result.action, position), ephemeral=True)
        if result.action == "added":
            await bot.tuning.notice_activity(guild_id=guild_id, channel_id=interaction.channel_id)


class VotesCog(commands.Cog):
    """Holds no commands: votes happen on the composition's buttons."""


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(VotesCog())
    bot.add_dynamic_items(VoteButton)
