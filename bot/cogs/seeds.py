"""/seed add|list|play|remove: a server's library of motifs to compose from.

With the job queue, a seed being played leaves a note for this bot's successor
(services.handover): should this process die first, the next one posts it (`SeedsCog`
registers with services.adoption)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.db import Seed, add_seed, get_seed, get_seed_by_id, list_seeds, remove_seed
from bot.errors import APOLOGY, UserFacingError, defer_privately, friendly_message
from bot.lifecycle import FAIL_SECONDS
from bot.services.engine_port import RenderResult
from bot.services.handover import SeedPlayNote
from bot.services.limits import Work
from bot.services.seed_files import read_midi_attachment
from bot.ui.audio_text import cut_text
from bot.ui.deferral import check_then_defer
from bot.ui.seed_names import saved_seed_names
from bot.ui.slash_options import SeedName
from bot.ui.text import escaped
from engine.api.errors import BadRequest, JobLost

if TYPE_CHECKING:
    from bot.app import MotifBot
    from engine.api.queue_handover import Orphan, QueueHandover

log = logging.getLogger(__name__)
NOT_PLAYED = "Motif restarted before this seed was ready to play. Please try /seed play again."

Interaction = discord.Interaction["MotifBot"]

LIST_LIMIT = 100
# Discord's embed descriptions hold 4096 characters; the rest is room for the "more" line.
DESCRIPTION_BUDGET = 3900
MORE = "...and more: type a name's first letters in /compose saved_seed to find it."


def _audio_budget(interaction: Interaction) -> int:
    # The MIDI beside the clip is a few KB; keep a margin for it and the request itself.
    return interaction.filesize_limit - 256 * 1024


def _played(
    seed: Seed, rendered: RenderResult, upload_limit: int
) -> tuple[str, list[discord.File]]:
    """The message that plays a seed: its audio and its MIDI."""
    stem = _file_name(seed.name)
    files = [
        discord.File(io.BytesIO(rendered.audio), filename=f"{stem}.ogg"),
        discord.File(io.BytesIO(seed.midi), filename=f"{stem}.mid"),
    ]
    text = f'The seed "{escaped(seed.name)}"'
    if (cut := cut_text(rendered, upload_limit)) is not None:
        text += f" ({cut}; the MIDI has all of it)"
    return text + ":", files


def _unplayable(error: BadRequest) -> UserFacingError:
    return UserFacingError(f"That seed cannot be played: {error}.")


def _file_name(name: str) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name).strip("-")
    return safe or "seed"


@app_commands.guild_only()
class SeedsCog(commands.GroupCog, group_name="seed", group_description="This server's seeds."):
    def __init__(self, bot: MotifBot) -> None:
        self.bot = bot
        super().__init__()

    async def cog_load(self) -> None:
        if self.bot.adoption is not None:
            self.bot.adoption.register(SeedPlayNote, self._post_adopted_play)

    @app_commands.command(name="add", description="Save a MIDI motif as a server seed.")
    @app_commands.describe(file="A short MIDI file", name="How members will pick it")
    async def add(
        self,
        interaction: Interaction,
        file: discord.Attachment,
        name: SeedName,
    ) -> None:
        await defer_privately(interaction)
        midi = await read_midi_attachment(
            file, max_notes=self.bot.settings.engine.work.max_seed_notes
        )
        async with self.bot.sessions() as session:
            seed = await add_seed(
                session,
                guild_id=self._guild(interaction),
                name=name,
                uploader_id=interaction.user.id,
                midi=midi.data,
                notes=midi.notes,
                seconds=midi.seconds,
            )
        await interaction.followup.send(
            f'Saved the seed "{seed.name}" ({midi.notes} notes, {midi.seconds:.1f} s).',
            ephemeral=True,
        )
        await self.bot.tuning.notice_activity(
            guild_id=seed.guild_id, channel_id=interaction.channel_id
        )

    @app_commands.command(name="list", description="The server's saved seeds.")
    async def list_(self, interaction: Interaction) -> None:
        async with self.bot.sessions() as session:
            seeds = await list_seeds(session, guild_id=self._guild(interaction), limit=LIST_LIMIT)
        if not seeds:
            await interaction.response.send_message(
                "This server has no seeds yet. Add one with /seed add.", ephemeral=True
            )
            return
        lines: list[str] = []
        for seed in seeds:
            figures = f" ({seed.notes} notes, {seed.seconds:.0f} s)" if seed.notes else ""
            name = discord.utils.escape_markdown(seed.name)
            line = f"**{name}**{figures} by <@{seed.uploader_id}>"
            if sum(len(x) + 1 for x in lines) + len(line) > DESCRIPTION_BUDGET:
                lines.append(MORE)
                break
            lines.append(line)
        embed = discord.Embed(title="Seeds", description="\n".join(lines))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="play", description="Listen to a saved seed.")
    @app_commands.describe(name="The seed")
    async def play(self, interaction: Interaction, name: str) -> None:
        guild_id = self._guild(interaction)
        async with self.bot.limits.slot(guild_id, interaction.user.id, Work.SEED_PLAY) as slot:
            seed = await check_then_defer(interaction, self._seed(guild_id, name))
            slot.start()
            # Should this process die before the audio comes, its successor posts it.
            note = SeedPlayNote(
                application_id=interaction.application_id,
                token=interaction.token,
                guild_id=guild_id,
                seed_id=seed.id,
                upload_limit=interaction.filesize_limit,
            )
            try:
                # The file must fit the upload limit; the engine lowers quality or cuts to fit.
                rendered = await self.bot.engine.render(
                    seed.midi,
                    max_audio_bytes=_audio_budget(interaction),
                    guild_id=guild_id,
                    handover=note.encode(),
                )
            except BadRequest as error:
                raise _unplayable(error) from error
        text, files = _played(seed, rendered, interaction.filesize_limit)
        await interaction.followup.send(text, files=files)

    async def _post_adopted_play(
        self, handover: QueueHandover, orphan: Orphan, note: SeedPlayNote
    ) -> None:
        webhook = discord.Webhook.partial(note.application_id, note.token, client=self.bot)
        try:
            async with self.bot.sessions() as session:
                seed = await get_seed_by_id(session, guild_id=note.guild_id, seed_id=note.seed_id)
            try:
                rendered = await handover.outcome(orphan, RenderResult)
            except BadRequest as error:
                raise _unplayable(error) from error
        except asyncio.CancelledError:  # this process stops too: say so, as the drain does
            with contextlib.suppress(discord.HTTPException, TimeoutError):
                await asyncio.wait_for(webhook.send(NOT_PLAYED, ephemeral=True), FAIL_SECONDS)
            raise
        except Exception as error:  # noqa: BLE001 - every outcome is told; bugs are logged
            text = NOT_PLAYED if isinstance(error, JobLost) else friendly_message(error)
            if text is None:
                log.exception("guild %s: an adopted seed play failed", note.guild_id)
            with contextlib.suppress(discord.HTTPException):
                await webhook.send(text or APOLOGY, ephemeral=True)
            return
        text, files = _played(seed, rendered, note.upload_limit)
        await webhook.send(text, files=files)
        log.info(
            "guild %s: seed %s played for a bot process that went away", note.guild_id, seed.id
        )

    async def _seed(self, guild_id: int, name: str) -> Seed:
        async with self.bot.sessions() as session:
            return await get_seed(session, guild_id=guild_id, name=name)

    @app_commands.command(name="remove", description="Delete a seed (its uploader or a manager).")
    @app_commands.describe(name="The seed")
    async def remove(self, interaction: Interaction, name: str) -> None:
        guild_id = self._guild(interaction)
        async with self.bot.sessions() as session:
            seed = await get_seed(session, guild_id=guild_id, name=name)
            member = interaction.user
            manager = isinstance(member, discord.Member) and member.guild_permissions.manage_guild
            if seed.uploader_id != member.id and not manager:
                raise UserFacingError(
                    f'Only the member who added "{seed.name}" or someone with Manage Server '
                    "can remove it."
                )
            await remove_seed(session, guild_id=guild_id, name=seed.name)
        await interaction.response.send_message(f'Removed the seed "{seed.name}".', ephemeral=True)

    @play.autocomplete("name")
    @remove.autocomplete("name")
    async def _name(self, interaction: Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await saved_seed_names(self.bot.sessions, interaction.guild_id, current)

    @staticmethod
    def _guild(interaction: Interaction) -> int:
        assert interaction.guild_id is not None, "the seed commands are guild-only"
        return interaction.guild_id


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(SeedsCog(bot))
