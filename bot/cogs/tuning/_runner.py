"""Each server's fine-tuning run as a background task of the bot: started by an admin or
automatically, cancelled by an admin, stopped cleanly when the bot closes.

One run per server: this process keeps at most one task per guild, and the database refuses
a second queued or running run (across processes too). The bot owns the runner (not the cog)
so that close() can stop the runs before it stops the engine, which would otherwise wait for
them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.cogs.tuning import _report
from bot.cogs.tuning._job import TuningJob, tune
from bot.cogs.tuning._outcome import announce, failure_reason, record_end, record_result
from bot.db import (
    FinetuneStatus,
    checkpoints_to_keep,
    count_new_finetune_material,
    create_finetune_run,
    export_finetune_data,
    fail_interrupted_finetune_runs,
    get_active_model_version,
)
from bot.db.errors import FinetuneAlreadyRunning
from bot.errors import UserFacingError

if TYPE_CHECKING:
    from bot.app import MotifBot

log = logging.getLogger(__name__)

SHUTDOWN_ERROR = "the bot shut down during the run; start it again with /finetune start"
# Closing waits this long for the runs to record how they ended (a database write or two).
CLOSE_TIMEOUT_SECONDS = 15.0


class NothingToLearn(UserFacingError):
    def __init__(self) -> None:
        super().__init__(
            "This server has nothing to learn from yet. Save a few seeds (/seed add, or Save "
            "under a composition) or vote for favourites, then try again."
        )


class NoRunInProgress(UserFacingError):
    def __init__(self) -> None:
        super().__init__("No fine-tuning run is in progress on this server.")


class RunFinishing(UserFacingError):
    def __init__(self, run_id: int) -> None:
        super().__init__(
            f"Fine-tuning run #{run_id} has just finished; its result is being posted."
        )


class ShuttingDown(UserFacingError):
    def __init__(self) -> None:
        super().__init__("The bot is restarting; try again in a minute.")


@dataclass(eq=False)
class _Running:
    job: TuningJob
    task: asyncio.Task[None] = field(init=False)
    # False once the engine has answered: the result is recorded whatever happens next.
    cancellable: bool = True
    # How a stop is recorded: (status, error, whether to announce it in the channel).
    stop: tuple[FinetuneStatus, str, bool] = (FinetuneStatus.FAILED, SHUTDOWN_ERROR, True)


class FinetuneRunner:
    def __init__(self, bot: MotifBot) -> None:
        self._bot = bot
        self._running: dict[int, _Running] = {}
        self._closing = False

    async def recover(self) -> None:
        """At start-up: runs a previous process left in progress will never report again."""
        async with self._bot.sessions() as session:
            failed = await fail_interrupted_finetune_runs(session)
        if failed:
            log.warning("marked %d interrupted fine-tuning runs as failed", failed)

    def is_running(self, guild_id: int) -> bool:
        return guild_id in self._running

    async def start(
        self, *, guild_id: int, channel_id: int | None, requester_id: int | None
    ) -> TuningJob:
        """Queue the server's run and start it in the background. NothingToLearn (and nothing
        created) without seeds or votes; FinetuneAlreadyRunning while one is in progress."""
        if self._closing:
            raise ShuttingDown()
        if guild_id in self._running:
            raise FinetuneAlreadyRunning(self._running[guild_id].job.run_id)
        settings = self._bot.settings
        async with self._bot.sessions() as session:
            export = await export_finetune_data(session, guild_id=guild_id)
            if export.is_empty:
                raise NothingToLearn()
            active = await get_active_model_version(session, guild_id=guild_id)
            keep = await checkpoints_to_keep(
                session, guild_id=guild_id, recent=settings.finetune_keep_versions
            )
            run = await create_finetune_run(
                session, guild_id=guild_id, requester_id=requester_id, channel_id=channel_id
            )
        job = TuningJob.from_export(
            export,
            run_id=run.id,
            channel_id=channel_id,
            parent_id=active.id if active is not None else None,
            start_from=active.path if active is not None else None,
            keep=keep,
            steps=settings.finetune_steps,
        )
        running = self._running[guild_id] = _Running(job)
        self._bot.metrics.finetune("started")
        running.task = asyncio.create_task(self._drive(running), name=f"motif-finetune-{guild_id}")
        log.info(
            "guild %s: fine-tuning run #%s started (%d pieces, %d pairs)",
            guild_id,
            run.id,
            len(job.request.pieces),
            job.pairs,
        )
        return job

    async def cancel(self, *, guild_id: int, user_id: int) -> TuningJob:
        """Stop the server's run and wait until it is recorded as cancelled."""
        running = self._running.get(guild_id)
        if running is None:
            raise NoRunInProgress()
        if not running.cancellable:
            raise RunFinishing(running.job.run_id)
        if not running.task.cancelling():  # else the bot is closing, which stops it anyway
            running.stop = (FinetuneStatus.CANCELLED, f"cancelled by <@{user_id}>", False)
            running.task.cancel()
        await asyncio.wait([running.task])
        return running.job

    async def notice_activity(self, *, guild_id: int, channel_id: int | None) -> None:
        """After a seed is saved or a vote cast: start the server's run by itself once
        MOTIF_FINETUNE_AUTO_AFTER new seeds and votes have come in since its last run.
        Never raises: the member's own action has already succeeded."""
        threshold = self._bot.settings.finetune_auto_after
        if not threshold or self._closing or guild_id in self._running:
            return
        try:
            async with self._bot.sessions() as session:
                if await count_new_finetune_material(session, guild_id=guild_id) < threshold:
                    return
            job = await self.start(guild_id=guild_id, channel_id=channel_id, requester_id=None)
        except (FinetuneAlreadyRunning, NothingToLearn, ShuttingDown):
            return
        except Exception:
            log.exception("guild %s: the automatic fine-tuning run could not start", guild_id)
            return
        if channel_id is not None:
            text = _report.started_text(job, automatic_after=threshold)
            channel = self._bot.get_partial_messageable(channel_id, guild_id=guild_id)
            try:
                await channel.send(text)
            except Exception:  # noqa: BLE001 - the run goes on; its result is announced later
                log.warning("could not announce run #%s", job.run_id, exc_info=True)

    async def close(self) -> None:
        """Stop every run (recorded as failed: the bot shut down) and wait for the records."""
        self._closing = True
        tasks = []
        for running in self._running.values():
            # A run being cancelled or recording its result only needs waiting for.
            if running.cancellable and not running.task.cancelling():
                running.task.cancel()
            tasks.append(running.task)
        if tasks:
            log.info("stopping %d fine-tuning runs", len(tasks))
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_SECONDS)

    async def _drive(self, running: _Running) -> None:
        job = running.job
        try:
            try:
                result = await tune(self._bot, job)
            except asyncio.CancelledError:
                await self._stopped(running)
                raise
            except Exception as error:  # noqa: BLE001 - every failure is recorded and told
                await self._failed(job, failure_reason(error))
                return
            running.cancellable = False
            try:
                version = await record_result(self._bot, job, result)
            except Exception as error:  # noqa: BLE001
                await self._failed(job, failure_reason(error))
                return
            self._bot.metrics.finetune("succeeded" if result.accepted else "rejected")
            await announce(self._bot, job, _report.result_embed(job, version))
        finally:
            del self._running[job.guild_id]

    async def _failed(self, job: TuningJob, error: str) -> None:
        self._bot.metrics.finetune("failed")
        log.warning("guild %s: fine-tuning run #%s failed: %s", job.guild_id, job.run_id, error)
        if await record_end(self._bot, job, status=FinetuneStatus.FAILED, error=error):
            await announce(
                self._bot, job, _report.failure_embed(job, error, status=FinetuneStatus.FAILED)
            )

    async def _stopped(self, running: _Running) -> None:
        status, error, tell = running.stop
        job = running.job
        cancelled = status is FinetuneStatus.CANCELLED
        self._bot.metrics.finetune("cancelled" if cancelled else "interrupted")
        log.info("guild %s: fine-tuning run #%s stopped: %s", job.guild_id, job.run_id, error)
        if await record_end(self._bot, job, status=status, error=error) and tell:
            await announce(self._bot, job, _report.failure_embed(job, error, status=status))
