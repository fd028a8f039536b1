"""/compose, and the buttons that compose again (Continue, Reroll): one composition from
request to message.

Every way in gives a job (services.composing); one flow checks the limits, defers, composes
with the engine's progress on screen, stores and posts. The buttons are DynamicItems:
discord.py matches a click's custom_id against their templates in any bot process, so
buttons posted before a restart keep working.

With the job queue, each composition leaves a note for this bot's successor
(services.handover): a process that dies while its compositions run is followed by one that
posts them when they arrive (services.adoption hands them to `ComposeCog`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.db import Composition, get_active_model_version
from bot.errors import APOLOGY, UserFacingError, friendly_message, reporting
from bot.lifecycle import FAIL_SECONDS, NOT_FINISHED, tracked_composition
from bot.services import composing
from bot.services.composing import ComposeJob
from bot.services.engine_port import ComposeResult
from bot.services.handover import PostingNote
from bot.services.limits import Work
from bot.ui import compose_message
from bot.ui.compose_progress import ProgressMessage
from bot.ui.deferral import check_then_defer
from bot.ui.seed_names import saved_seed_names
from bot.ui.slash_options import (
    AS_IN_SEED,
    INSTRUMENT_CHOICES,
    Bars,
    Candidates,
    Temperature,
    Tempo,
)
from bot.ui.views import (
    CONTINUE_TEMPLATE,
    REROLL_TEMPLATE,
    composition_view,
    continue_id,
    reroll_id,
)
from engine.api.errors import JobLost
from engine.api.form import DEFAULT_FORM, FORMS
from engine.api.limits import DEFAULT_BARS, DEFAULT_CANDIDATES, DEFAULT_TEMPERATURE

if TYPE_CHECKING:
    from bot.app import MotifBot
    from engine.api.queue_handover import Orphan, QueueHandover

log = logging.getLogger(__name__)
# discord.py types Item.callback for an interaction of any client, so an override that names
# MotifBot is flagged [override]; ours only ever get MotifBot's, hence the
# `type: ignore[override]` on them.
Interaction = discord.Interaction["MotifBot"]

FORM_NAMES = {
    "return": "the seed's theme returns",
    "free": "free (no planned repeats)",
    "AABA": "AABA",
    "ABAB": "ABAB",
}
FORM_CHOICES = [app_commands.Choice(name=FORM_NAMES[f], value=f) for f in FORMS]
STILL_COMPOSING = "Motif restarted; your composition is still being written..."

Edit = Callable[..., Awaitable[discord.Message]]


class ComposeCog(commands.Cog):
    def __init__(self, bot: MotifBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        if self.bot.adoption is not None:
            self.bot.adoption.register(PostingNote, self._post_adopted)

    async def _post_adopted(
        self, handover: QueueHandover, orphan: Orphan, note: PostingNote
    ) -> None:
        bot = self.bot
        webhook = discord.Webhook.partial(note.application_id, note.token, client=bot)
        edit: Edit = functools.partial(webhook.edit_message, "@original")
        with contextlib.suppress(discord.HTTPException):  # cosmetic, like the progress
            await edit(content=STILL_COMPOSING)
        message: discord.Message | None = None
        try:
            result = await handover.outcome(orphan, ComposeResult)
            composition = await composing.record(
                bot.sessions,
                note.job,
                result,
                guild_id=note.guild_id,
                channel_id=note.channel_id,
                requester_id=note.user_id,
                model_version_id=note.model_version_id,
            )
            message = await _post(bot, edit, note.upload_limit, composition, note.job, result)
            await composing.posted(bot.sessions, composition, message.id)
        except asyncio.CancelledError:
            # This process stops too (its cogs unload after the drain): say so, as the
            # drain says it of the compositions it cancels (unless it is up already).
            if message is not None:
                raise
            with contextlib.suppress(discord.HTTPException, TimeoutError):
                await asyncio.wait_for(
                    edit(content=NOT_FINISHED, embed=None, attachments=[], view=None),
                    FAIL_SECONDS,
                )
            raise
        except Exception as error:  # noqa: BLE001 - every outcome is told; bugs are logged
            text = NOT_FINISHED if isinstance(error, JobLost) else friendly_message(error)
            if text is None:
                log.exception("guild %s: an adopted composition failed", note.guild_id)
            with contextlib.suppress(discord.HTTPException):
                await edit(content=text or APOLOGY, embed=None, attachments=[], view=None)
            return
        log.info(
            "guild %s: composition #%s posted for a bot process that went away",
            note.guild_id,
            composition.id,
        )

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
        quantise="Snap a seed played by hand to sixteenths and triplets first",
    )
    @app_commands.choices(instrument=INSTRUMENT_CHOICES, form=FORM_CHOICES)
    async def compose(
        self,
        interaction: Interaction,
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
        quantise: bool = False,
    ) -> None:
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
                quantise=quantise,
            )
            return await composing.new_job(
                self.bot.sessions,
                guild_id=guild_id,
                attachment=seed,
                saved_seed=saved_seed,
                max_seed_notes=self.bot.settings.engine.work.max_seed_notes,
                **options,
            )

        await _compose_and_post(self.bot, interaction, resolve)

    @compose.autocomplete("saved_seed")
    async def _saved_seed(
        self, interaction: Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await saved_seed_names(self.bot.sessions, interaction.guild_id, current)


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

    async def callback(self, interaction: Interaction) -> None:  # type: ignore[override]
        await reporting(interaction, self._continue(interaction))

    async def _continue(self, interaction: Interaction) -> None:
        bot, guild_id = interaction.client, _guild(interaction)
        await _compose_and_post(
            bot,
            interaction,
            lambda: composing.continuation(
                bot.sessions, guild_id=guild_id, candidate_id=self.candidate_id
            ),
        )


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

    async def callback(self, interaction: Interaction) -> None:  # type: ignore[override]
        await reporting(interaction, self._reroll(interaction))

    async def _reroll(self, interaction: Interaction) -> None:
        bot, guild_id = interaction.client, _guild(interaction)
        await _compose_and_post(
            bot,
            interaction,
            lambda: composing.reroll(
                bot.sessions, guild_id=guild_id, composition_id=self.composition_id
            ),
        )


def _guild(interaction: Interaction) -> int:
    if interaction.guild_id is None:  # buttons only exist on server messages
        raise RuntimeError("a composition button was clicked outside a server")
    return interaction.guild_id


@tracked_composition  # a stopping bot waits for it; the metrics count it
async def _compose_and_post(
    bot: MotifBot,
    interaction: Interaction,
    resolve: Callable[[], Awaitable[ComposeJob]],
) -> None:
    """Check the limits, resolve the seed, defer, compose, store, post one message.

    `resolve` runs before the deferral when it is quick (see ui.deferral): a seed it refuses
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

    async with bot.limits.slot(guild_id, user_id, Work.COMPOSITION) as slot:
        job = await check_then_defer(interaction, checked())
        async with bot.sessions() as session:
            version = await get_active_model_version(session, guild_id=guild_id)
        request = job.request(
            guild_id=guild_id,
            max_audio_bytes=compose_message.audio_budget(
                interaction.filesize_limit, job.candidates
            ),
            model=version.engine_id if version is not None else None,
        )
        # Should this process die before the result comes, its successor posts it.
        note = PostingNote(
            application_id=interaction.application_id,
            token=interaction.token,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            upload_limit=interaction.filesize_limit,
            model_version_id=version.id if version is not None else None,
            job=job,
        )
        slot.start()
        async with ProgressMessage(interaction) as progress:
            result = await bot.engine.compose(
                request, on_progress=progress.update, handover=note.encode()
            )
        composition = await composing.record(
            bot.sessions,
            job,
            result,
            guild_id=guild_id,
            channel_id=channel_id,
            requester_id=user_id,
            model_version_id=version.id if version is not None else None,
        )
        message = await _post(
            bot,
            interaction.edit_original_response,
            interaction.filesize_limit,
            composition,
            job,
            result,
        )
        await composing.posted(bot.sessions, composition, message.id)
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
    edit: Edit,
    upload_limit: int,
    composition: Composition,
    job: ComposeJob,
    result: ComposeResult,
) -> discord.Message:
    """Post the stored composition with `edit` (of the interaction's original response); if
    that fails, remove it again (a composition nobody can see, vote on or continue must not
    count anywhere) and tell the member."""
    view = composition_view(composition.id, [c.id for c in composition.candidates], {})
    try:
        return await edit(
            content=None,
            embed=compose_message.embed(
                composition.id,
                job,
                result,
                model_version_id=composition.model_version_id,
                upload_limit=upload_limit,
            ),
            attachments=compose_message.files(result),
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
        await asyncio.shield(composing.forget(bot.sessions, composition))
        if isinstance(error, discord.HTTPException):
            raise NotPosted() from error
        raise


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(ComposeCog(bot))
    bot.add_dynamic_items(ContinueButton, RerollButton)
