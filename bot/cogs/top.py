"""/top: the server's most voted candidates, with links to their messages."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.db import top_candidates

if TYPE_CHECKING:
    from bot.app import MotifBot

Interaction = discord.Interaction["MotifBot"]

TOP_LIMIT = 10


class TopCog(commands.Cog):
    def __init__(self, bot: MotifBot) -> None:
        self.bot = bot

    @app_commands.command(name="top", description="This server's most voted candidates.")
    @app_commands.guild_only()
    async def top(self, interaction: Interaction) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None
        async with self.bot.sessions() as session:
            best = await top_candidates(session, guild_id=guild_id, limit=TOP_LIMIT)
        if not best:
            await interaction.response.send_message(
                "No votes yet. Compose something with /compose and vote for your favourite!"
            )
            return
        lines = []
        for rank, entry in enumerate(best, start=1):
            where = f"composition #{entry.composition_id}, candidate {entry.position}"
            if entry.message_id is not None:
                url = (
                    f"https://discord.com/channels/{guild_id}/{entry.channel_id}/{entry.message_id}"
                )
                where = f"[{where}]({url})"
            votes = "vote" if entry.votes == 1 else "votes"
            lines.append(f"{rank}. {where}: {entry.votes} {votes} (by <@{entry.requester_id}>)")
        embed = discord.Embed(
            title="Top candidates", description="\n".join(lines), colour=discord.Colour.gold()
        )
        await interaction.response.send_message(embed=embed)


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(TopCog(bot))
