"""/piece export: a chain of rounds (each continuing a candidate of the last) as one MIDI file,
and its audio: in one clip, or in parts when the piece is long."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.db import get_candidate, get_piece, get_tallies
from bot.db.queries import PieceRound
from bot.errors import ENGINE_DOWN, UserFacingError
from bot.services.engine_port import RenderResult
from bot.services.limits import Work
from bot.services.piece_assembly import AudioPart, PieceFiles, piece_files
from bot.ui.audio_text import clock, cut_text, minutes
from bot.ui.deferral import check_then_defer
from engine.api.errors import BadRequest, EngineError, EngineUnavailable
from engine.api.limits import CANDIDATES

if TYPE_CHECKING:
    from bot.app import MotifBot

Interaction = discord.Interaction["MotifBot"]

log = logging.getLogger(__name__)

# Room kept in a message's upload limit for its text and the request's own overhead.
MESSAGE_RESERVE_BYTES = 64 * 1024


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


def _rounds(n: int) -> str:
    return f"{n} round{'s' if n != 1 else ''}"


def _span(part: AudioPart) -> str:
    if part.first_round == part.last_round:
        return f"round {part.first_round}"
    return f"rounds {part.first_round}-{part.last_round}"


def _audio_failure(error: Exception) -> str:
    """Why a piece's audio could not be made, for the member."""
    if isinstance(error, EngineUnavailable):
        return ENGINE_DOWN
    if isinstance(error, BadRequest):
        return f"The audio could not be made: {error}."
    return "The audio could not be made (the engine failed; it has been logged)."


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
        interaction: Interaction,
        composition: app_commands.Range[int, 1],
        candidate: app_commands.Range[int, 1, CANDIDATES.high] | None = None,
    ) -> None:
        guild_id = interaction.guild_id
        assert guild_id is not None, "the piece commands are guild-only"
        async with self.bot.limits.slot(guild_id, interaction.user.id, Work.PIECE_EXPORT) as slot:
            piece, ending = await check_then_defer(
                interaction, self._piece(guild_id, composition, candidate)
            )
            slot.start()
            title = (
                f"The piece ending with composition #{composition}, candidate {ending}: "
                f"{_rounds(piece.rounds)}"
            )
            if len(piece.parts) == 1:
                await self._send_whole(interaction, composition, piece, title)
            else:
                await self._send_in_parts(interaction, composition, piece, title)

    async def _piece(
        self, guild_id: int, composition: int, candidate: int | None
    ) -> tuple[PieceFiles, int]:
        """The piece's files, and the position of the candidate it ends with."""
        async with self.bot.sessions() as session:
            rounds = await get_piece(session, guild_id=guild_id, composition_id=composition)
            tallies = await get_tallies(session, guild_id=guild_id, composition_id=composition)
            last = await get_candidate(
                session, guild_id=guild_id, candidate_id=_ending(rounds[-1], tallies, candidate)
            )
        midis = [r.continued.midi for r in rounds[:-1] if r.continued is not None] + [last.midi]
        # symusic is quick, but a long piece is still work the event loop must not do.
        files = await asyncio.to_thread(piece_files, midis, part_seconds=self._part_seconds)
        return files, last.position

    @property
    def _part_seconds(self) -> float:
        """The most audio one render job makes (the engine's bound): an audio part's length."""
        return self.bot.settings.engine.work.max_render_seconds

    async def _send_whole(
        self, interaction: Interaction, composition: int, piece: PieceFiles, title: str
    ) -> None:
        """One message with the MIDI and the audio (the MIDI alone, and why, if no audio)."""
        midi = discord.File(io.BytesIO(piece.midi), filename=f"piece-{composition}.mid")
        budget = interaction.filesize_limit - len(piece.midi) - MESSAGE_RESERVE_BYTES
        rendered = await self._render(interaction, piece.parts[0], budget)
        if isinstance(rendered, str):
            await interaction.followup.send(f"{title}.\n{rendered} Here is its MIDI.", file=midi)
            return
        text = title + "."
        if (cut := cut_text(rendered, interaction.filesize_limit)) is not None:
            text += f"\nThe MIDI has all of it; {cut}."
        audio = discord.File(io.BytesIO(rendered.audio), filename=f"piece-{composition}.ogg")
        await interaction.followup.send(text, files=[audio, midi])

    async def _send_in_parts(
        self, interaction: Interaction, composition: int, piece: PieceFiles, title: str
    ) -> None:
        """The MIDI first (whole, whatever happens to the audio), then the audio part by part,
        each a message of its own that fits the upload limit."""
        n = len(piece.parts)
        text = (
            f"{title}. Its MIDI is here; the audio follows in {n} parts of whole rounds, "
            f"up to {minutes(self._part_seconds)} each"
        )
        if (left := piece.rounds - piece.rounds_with_audio) > 0:
            text += (
                f" (rounds 1-{piece.rounds_with_audio}: the {_rounds(left)} after them are in "
                "the MIDI only)"
            )
        midi = discord.File(io.BytesIO(piece.midi), filename=f"piece-{composition}.mid")
        await interaction.followup.send(text + ".", file=midi)
        budget = interaction.filesize_limit - MESSAGE_RESERVE_BYTES
        for k, part in enumerate(piece.parts, start=1):
            rendered = await self._render(interaction, part, budget)
            if isinstance(rendered, str):
                await interaction.followup.send(
                    f"{rendered} The MIDI above has the whole piece.", ephemeral=True
                )
                return
            text = f"Part {k} of {n}: {_span(part)} ({clock(rendered.seconds)})"
            if (cut := cut_text(rendered, interaction.filesize_limit)) is not None:
                text += f"; {cut}"
            audio = discord.File(
                io.BytesIO(rendered.audio), filename=f"piece-{composition}-part-{k}.ogg"
            )
            await interaction.followup.send(text + ".", file=audio)

    async def _render(
        self, interaction: Interaction, part: AudioPart, budget: int
    ) -> RenderResult | str:
        """The part's audio, or why there is none (the MIDI is sent either way)."""
        try:
            # Asked for explicitly: an engine with a lower bound refuses rather than cutting a
            # part short unannounced.
            return await self.bot.engine.render(
                part.midi,
                max_audio_bytes=budget,
                max_seconds=self._part_seconds,
                guild_id=interaction.guild_id,
            )
        except EngineError as error:
            log.warning(
                "guild %s: audio of %s could not be made: %s",
                interaction.guild_id,
                _span(part),
                error,
            )
            return _audio_failure(error)


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(PiecesCog(bot))
