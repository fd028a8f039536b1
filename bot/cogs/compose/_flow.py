"""One composition from request to message, shared by /compose, Continue and Reroll."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import discord

from bot.cogs._deferral import check_then_defer
from bot.cogs.compose import _message
from bot.cogs.compose._job import ComposeJob
from bot.cogs.compose._progress import ProgressMessage
from bot.db import (
    Composition,
    delete_composition,
    get_active_model_version,
    record_composition,
    set_composition_message,
)
from bot.db.queries import NewCandidate
from bot.engine_port import ComposeResult
from bot.errors import UserFacingError
from bot.lifecycle import tracked_composition
from bot.limits import Work
from bot.views import composition_view

if TYPE_CHECKING:
    from bot.app import MotifBot

log = logging.getLogger(__name__)


@tracked_composition  # a stopping bot waits for it; the metrics count it
async def compose_and_post(
    bot: MotifBot,
    interaction: discord.Interaction,
    resolve: Callable[[], Awaitable[ComposeJob]],
) -> None:
    """Check the limits, resolve the seed, defer, compose, store, post one message.

    `resolve` runs before the deferral when it is quick (see _deferral): a seed it refuses
    is answered privately and gives the member's cooldown back. Errors propagate to the
    caller's error handler.
    """
    guild_id, channel_id = interaction.guild_id, interaction.channel_id
    user_id = interaction.user.id
    assert guild_id is not None and channel_id is not None, "the commands are guild-only"
    # Refusals come before the deferral, so they are a plain ephemeral answer.
    async def checked() -> ComposeJob:
        job = await resolve()
        # Work over the engine's limits (20 bpm, 4/2, 64 bars: 26-minute clips) is refused
        # here, privately and before any engine time; the engine checks again.
        await asyncio.to_thread(job.check_work, bot.settings.engine.work)
        return job

    with bot.limits.slot(guild_id, user_id, Work.COMPOSITION) as slot:
        job = await check_then_defer(interaction, checked())
        async with bot.sessions() as session:
            version = await get_active_model_version(session, guild_id=guild_id)
        request = job.request(
            guild_id=guild_id,
            max_audio_bytes=_message.audio_budget(interaction.filesize_limit, job.candidates),
            checkpoint=version.path if version is not None else None,
        )
        slot.start()
        async with ProgressMessage(interaction) as progress:
            result = await bot.engine.compose(request, on_progress=progress.update)
        async with bot.sessions() as session:
            composition = await record_composition(
                session,
                guild_id=guild_id,
                channel_id=channel_id,
                requester_id=user_id,
                candidates=[NewCandidate(c.midi, c.seconds, c.notes) for c in result.candidates],
                params=job.params(),
                seed_id=job.seed_id,
                # A continuation's seed is its parent candidate; other seeds keep their bytes.
                seed_midi=job.seed_midi if job.parent_candidate_id is None else None,
                parent_candidate_id=job.parent_candidate_id,
                model_version_id=version.id if version is not None else None,
            )
        message = await _post(bot, interaction, composition, job, result)
        async with bot.sessions() as session:
            await set_composition_message(
                session, guild_id=guild_id, composition_id=composition.id, message_id=message.id
            )
        log.info(
            "guild %s: composition #%s posted (%d candidates, %.1f s)",
            guild_id,
            composition.id,
            len(result.candidates),
            result.timings.get("total", 0.0),
        )


class NotPosted(UserFacingError):
    metrics_reason = "discord"  # Discord refused the post: not the member's doing

    def __init__(self) -> None:
        super().__init__(
            "Discord did not take the message with your composition, so nothing of it was "
            "kept. Please try again in a moment."
        )


async def _post(
    bot: MotifBot,
    interaction: discord.Interaction,
    composition: Composition,
    job: ComposeJob,
    result: ComposeResult,
) -> discord.InteractionMessage:
    """Post the stored composition; if that fails, remove it again (a composition nobody can
    see, vote on or continue must not count anywhere) and tell the member."""
    view = composition_view(composition.id, [c.id for c in composition.candidates], {})
    try:
        return await interaction.edit_original_response(
            content=None,
            embed=_message.embed(
                composition.id,
                job,
                result,
                model_version_id=composition.model_version_id,
                upload_limit=interaction.filesize_limit,
            ),
            attachments=_message.files(result),
            view=view,
        )
    except BaseException as error:
        log.warning(
            "guild %s: composition #%s could not be posted; removing it",
            composition.guild_id,
            composition.id,
            exc_info=not isinstance(error, asyncio.CancelledError),
        )
        # Shielded: a cancelled post (the bot shutting down) must still not leave the row.
        await asyncio.shield(_forget(bot, composition))
        if isinstance(error, discord.HTTPException):
            raise NotPosted() from error
        raise


async def _forget(bot: MotifBot, composition: Composition) -> None:
    async with bot.sessions() as session:
        await delete_composition(
            session, guild_id=composition.guild_id, composition_id=composition.id
        )
