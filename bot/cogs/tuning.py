"""/finetune start|status|cancel and /model info|rollback, for members with Manage Server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.db import (
    get_active_model_version,
    get_latest_finetune_run,
    list_model_versions,
    rollback_model_version,
)
from bot.db.models import ACTIVE_FINETUNE_STATUSES
from bot.errors import UserFacingError
from bot.ui import tuning_report

if TYPE_CHECKING:
    from bot.app import MotifBot

Interaction = discord.Interaction["MotifBot"]

MANAGE_SERVER = discord.Permissions(manage_guild=True)


class RunBlocksRollback(UserFacingError):
    def __init__(self, run_id: int) -> None:
        super().__init__(
            f"Fine-tuning run #{run_id} is in progress and would replace the model when it "
            "ends. Stop it with /finetune cancel first, then roll back."
        )


def _guild(interaction: Interaction) -> int:
    assert interaction.guild_id is not None, "the tuning commands are guild-only"
    return interaction.guild_id


class TuningCog(commands.Cog):
    # default_permissions hides the commands from members without Manage Server, but a
    # server's admins may grant them to anyone (Server Settings > Integrations):
    # interaction_check below is what enforces it.
    finetune = app_commands.Group(
        name="finetune",
        description="Tune this server's model on its seeds and votes.",
        guild_only=True,
        default_permissions=MANAGE_SERVER,
    )
    model = app_commands.Group(
        name="model",
        description="This server's model versions.",
        guild_only=True,
        default_permissions=MANAGE_SERVER,
    )

    def __init__(self, bot: MotifBot) -> None:
        self.bot = bot

    async def interaction_check(self, interaction: Interaction) -> bool:  # type: ignore[override]
        # Every command here changes (or shows the figures of) the model all members use.
        if not interaction.permissions.manage_guild:
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    @finetune.command(name="start", description="Tune this server's model on its seeds and votes.")
    async def start(self, interaction: Interaction) -> None:
        await interaction.response.defer(thinking=True)
        job = await self.bot.tuning.start(
            guild_id=_guild(interaction),
            channel_id=interaction.channel_id,
            requester_id=interaction.user.id,
        )
        await interaction.followup.send(tuning_report.started_text(job))

    @finetune.command(name="status", description="The latest fine-tuning run and its figures.")
    async def status(self, interaction: Interaction) -> None:
        async with self.bot.sessions() as session:
            run = await get_latest_finetune_run(session, guild_id=_guild(interaction))
        if run is None:
            await interaction.response.send_message(
                "This server's model was never fine-tuned. /finetune start tunes it on the "
                "server's seeds and votes.",
                ephemeral=True,
            )
            return
        await interaction.response.send_message(
            embed=tuning_report.status_embed(run), ephemeral=True
        )

    @finetune.command(name="cancel", description="Stop the fine-tuning run in progress.")
    async def cancel(self, interaction: Interaction) -> None:
        guild_id = _guild(interaction)
        await interaction.response.defer(thinking=True)
        job = await self.bot.tuning.cancel(guild_id=guild_id, user_id=interaction.user.id)
        async with self.bot.sessions() as session:
            serving = await get_active_model_version(session, guild_id=guild_id)
        await interaction.followup.send(
            tuning_report.cancelled_text(
                job.run_id, interaction.user.id, serving.id if serving is not None else None
            )
        )

    @model.command(name="info", description="The version composing here, and the latest ones.")
    async def info(self, interaction: Interaction) -> None:
        guild_id = _guild(interaction)
        async with self.bot.sessions() as session:
            active = await get_active_model_version(session, guild_id=guild_id)
            versions = await list_model_versions(
                session, guild_id=guild_id, limit=tuning_report.LISTED_VERSIONS
            )
        await interaction.response.send_message(
            embed=tuning_report.model_embed(active, versions), ephemeral=True
        )

    @model.command(name="rollback", description="Go back to the version this one was tuned from.")
    async def rollback(self, interaction: Interaction) -> None:
        guild_id = _guild(interaction)
        await interaction.response.defer(thinking=True)
        async with self.bot.sessions() as session:
            run = await get_latest_finetune_run(session, guild_id=guild_id)
            if run is not None and run.status in ACTIVE_FINETUNE_STATUSES:
                raise RunBlocksRollback(run.id)
            before = await get_active_model_version(session, guild_id=guild_id)
            after = await rollback_model_version(session, guild_id=guild_id)
        # Public: everyone's next compositions change.
        await interaction.followup.send(tuning_report.rollback_text(before, after))


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(TuningCog(bot))
