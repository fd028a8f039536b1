"""/piece export: a chain of rounds (each continuing a candidate of the last) as one file."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.cogs.pieces._concat import concatenate
from bot.db import get_candidate, get_piece, get_tallies
from bot.db.queries import PieceRound
from bot.errors import UserFacingError

if TYPE_CHECKING:
    from bot.app import MotifBot


def _ending(last: PieceRound, tallies: dict[int, int], candidate: int | None) -> int:
    """The candidate id the piece ends with: the one asked for, else the most voted
    (the lowest position among equals)."""
    candidates = last.composition.candidates
    if candidate is not None:
        if candidate > len(candidates):
            raise UserFacingError(
                f"Composition #{last.composition.id} has {len(candidates)} candidates "
                f"(received {candidate})."
            )
        return candidates[candidate - 1].id
    return max(candidates, key=lambda c: (tallies.get(c.id, 0), -c.position)).id


@app_commands.guild_only()
class PiecesCog(commands.GroupCog, group_name="piece", group_description="Pieces of rounds."):
    def __init__(self, bot: MotifBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="export", description="A piece's rounds as one MIDI (and audio).")
    @app_commands.describe(
        composition="The number of its last round (shown as Composition #N)",
        candidate="Which candidate of that round ends the piece (default: the most voted)",
    )
    async def export(
        self,
        interaction: discord.Interaction,
        composition: app_commands.Range[int, 1],
        candidate: app_commands.Range[int, 1, 4] | None = None,
    ) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None, "the piece commands are guild-only"
        await interaction.response.defer(thinking=True)
        async with self.bot.sessions() as session:
            rounds = await get_piece(session, guild_id=guild_id, composition_id=composition)
            tallies = await get_tallies(session, guild_id=guild_id, composition_id=composition)
            last = await get_candidate(
                session, guild_id=guild_id, candidate_id=_ending(rounds[-1], tallies, candidate)
            )
        midis = [r.continued.midi for r in rounds[:-1] if r.continued is not None] + [last.midi]
        # symusic is quick, but a long piece is still work the event loop must not do.
        midi = await asyncio.to_thread(concatenate, midis)
        files = [discord.File(io.BytesIO(midi), filename=f"piece-{composition}.mid")]
        text = (
            f"The piece ending with composition #{composition}, candidate {last.position}: "
            f"{len(rounds)} round{'s' if len(rounds) != 1 else ''}."
        )
        # The MIDI is small; the rest of the upload limit is the clip's (the engine fits it).
        budget = interaction.filesize_limit - len(midi) - 64 * 1024
        audio = await self.bot.engine.render(midi, max_audio_bytes=budget)
        files.insert(0, discord.File(io.BytesIO(audio), filename=f"piece-{composition}.ogg"))
        await interaction.followup.send(text, files=files)
