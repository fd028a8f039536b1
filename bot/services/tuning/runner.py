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
import os
import socket
import uuid
from dataclasses import dataclass, field

from bot.db import (
    FinetuneStatus,
    count_new_finetune_material,
    create_finetune_run,
    export_finetune_data,
    fail_abandoned_finetune_runs,
    get_active_model_version,
    renew_finetune_lease,
)
from bot.db.errors import FinetuneAlreadyRunning, FinetuneRunFinished
from bot.db.queries.finetune import RUN_HEARTBEAT_SECONDS
from bot.errors import UserFacingError
from bot.services.tuning.host import TuningHost
from bot.services.tuning.job import TuningJob, tune
from bot.services.tuning.outcome import announce, failure_reason, record_end, record_result
from bot.ui import tuning_report

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


def process_owner_id() -> str:
    """Names this bot process as the owner of its runs: host, pid and a random part (a pid
    is reused after a restart, and two machines may share a database)."""
    host = socket.gethostname()[:40]
    return f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class FinetuneRunner:
    def __init__(self, bot: TuningHost) -> None:
        self._bot = bot
        self._running: dict[int, _Running] = {}
        self._closing = False
        self.owner = process_owner_id()

    async def recover(self) -> None:
        """At start-up: fail the runs whose owner is gone (they will never report again).
        Another live bot process's runs on the same database are left alone: it renews
        their lease."""
        async with self._bot.sessions() as session:
            failed = await fail_abandoned_finetune_runs(session)
        if failed:
            log.warning("marked %d abandoned fine-tuning runs as failed", failed)

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
            # A run whose process died after this one started would block the server for good.
            if failed := await fail_abandoned_finetune_runs(session, guild_id=guild_id):
                log.warning(
                    "guild %s: marked %d abandoned fine-tuning runs as failed", guild_id, failed
                )
            run = await create_finetune_run(
                session,
                guild_id=guild_id,
                requester_id=requester_id,
                channel_id=channel_id,
                owner=self.owner,
            )
        job = TuningJob.from_export(
            export,
            run_id=run.id,
            channel_id=channel_id,
            parent_id=active.id if active is not None else None,
            start_from=active.engine_id if active is not None else None,
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
            text = tuning_report.started_text(job, automatic_after=threshold)
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
        lease = asyncio.create_task(
            self._keep_lease(job), name=f"motif-finetune-{job.run_id}-lease"
        )
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
            except FinetuneRunFinished as error:
                # Another bot process found this run abandoned (this one went silent for
                # longer than the lease) and failed it: its result is not used.
                self._bot.metrics.finetune("interrupted")
                log.warning(
                    "guild %s: run #%s ended elsewhere (%s); its result is not used",
                    job.guild_id,
                    job.run_id,
                    error.status,
                )
                return
            except Exception as error:  # noqa: BLE001
                await self._failed(job, failure_reason(error))
                return
            self._bot.metrics.finetune("succeeded" if result.accepted else "rejected")
            await announce(self._bot, job, tuning_report.result_embed(job, version))
        finally:
            lease.cancel()
            await asyncio.wait([lease])
            del self._running[job.guild_id]

    async def _keep_lease(self, job: TuningJob) -> None:
        """Renew this process's lease on the run while it goes on, so that another bot
        process starting on the same database leaves it alone."""
        while True:
            await asyncio.sleep(RUN_HEARTBEAT_SECONDS)
            try:
                async with self._bot.sessions() as session:
                    alive = await renew_finetune_lease(
                        session, guild_id=job.guild_id, run_id=job.run_id, owner=self.owner
                    )
            except Exception:  # noqa: BLE001 - the next beat may succeed; the lease is long
                log.warning("could not renew the lease of run #%s", job.run_id, exc_info=True)
                continue
            if not alive:
                return  # it has finished (or been failed elsewhere): nothing to keep

    async def _failed(self, job: TuningJob, error: str) -> None:
        self._bot.metrics.finetune("failed")
        log.warning("guild %s: fine-tuning run #%s failed: %s", job.guild_id, job.run_id, error)
        if await record_end(self._bot, job, status=FinetuneStatus.FAILED, error=error):
            failed = tuning_report.failure_embed(job, error, status=FinetuneStatus.FAILED)
            await announce(self._bot, job, failed)

    async def _stopped(self, running: _Running) -> None:
        status, error, tell = running.stop
        job = running.job
        cancelled = status is FinetuneStatus.CANCELLED
        self._bot.metrics.finetune("cancelled" if cancelled else "interrupted")
        log.info("guild %s: fine-tuning run #%s stopped: %s", job.guild_id, job.run_id, error)
        if await record_end(self._bot, job, status=status, error=error) and tell:
            await announce(self._bot, job, tuning_report.failure_embed(job, error, status=status))
