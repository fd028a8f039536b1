"""Fine-tuning runs: at most one queued or running per server, and their progress."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.errors import (
    FinetuneAlreadyRunning,
    FinetuneRunFinished,
    FinetuneRunNotFound,
    ModelVersionNotFound,
)
from bot.db.models import (
    ACTIVE_FINETUNE_STATUSES,
    Composition,
    FinetuneRun,
    FinetuneStatus,
    ModelVersion,
    Seed,
    Vote,
)
from bot.db.queries._tx import check_id, check_snowflake, ensure_guild, reading, writing
from bot.db.types import utcnow

FINISHED_STATUSES = (FinetuneStatus.SUCCEEDED, FinetuneStatus.FAILED, FinetuneStatus.CANCELLED)
# Which status may follow which; a finished run never changes again.
_NEXT_STATUSES = {
    FinetuneStatus.QUEUED: {FinetuneStatus.RUNNING, *FINISHED_STATUSES},
    FinetuneStatus.RUNNING: set(FINISHED_STATUSES),
}
INTERRUPTED_ERROR = "interrupted: the bot restarted while the run was in progress"


async def create_finetune_run(
    session: AsyncSession,
    *,
    guild_id: int,
    requester_id: int | None = None,
    channel_id: int | None = None,
) -> FinetuneRun:
    """Queue a fine-tuning run; FinetuneAlreadyRunning if the server has one in progress.

    `requester_id`: who asked (None: started automatically); `channel_id`: where its result
    is announced.
    """
    check_snowflake("guild_id", guild_id)
    if requester_id is not None:
        check_snowflake("requester_id", requester_id)
    if channel_id is not None:
        check_snowflake("channel_id", channel_id)
    now = utcnow()
    run = FinetuneRun(
        guild_id=guild_id,
        requester_id=requester_id,
        channel_id=channel_id,
        status=FinetuneStatus.QUEUED.value,
        progress=0.0,
        metrics={},
        created_at=now,
        updated_at=now,
    )
    try:
        async with writing(session):
            await ensure_guild(session, guild_id)
            if (active := await _active_run_id(session, guild_id)) is not None:
                raise FinetuneAlreadyRunning(active)
            session.add(run)
    except IntegrityError:
        # A concurrent request won the race (PostgreSQL); the partial unique index held.
        async with reading(session):
            active = await _active_run_id(session, guild_id)
        raise FinetuneAlreadyRunning(active) from None
    return run


async def _active_run_id(session: AsyncSession, guild_id: int) -> int | None:
    return await session.scalar(
        select(FinetuneRun.id).where(
            FinetuneRun.guild_id == guild_id,
            FinetuneRun.status.in_([s.value for s in ACTIVE_FINETUNE_STATUSES]),
        )
    )


async def update_finetune_run(
    session: AsyncSession,
    *,
    guild_id: int,
    run_id: int,
    status: FinetuneStatus | None = None,
    progress: float | None = None,
    metrics: Mapping[str, Any] | None = None,
    error: str | None = None,
    model_version_id: int | None = None,
) -> FinetuneRun:
    """Report on a run. Only the given fields change; `metrics` are merged into the
    run's. Moving to running stamps started_at, to a finished status finished_at (and
    succeeded sets progress to 1). FinetuneRunFinished once the run has finished.
    """
    check_snowflake("guild_id", guild_id)
    check_id("run_id", run_id)
    if progress is not None and not (math.isfinite(progress) and 0 <= progress <= 1):
        raise ValueError(f"progress must be within 0 and 1 (received {progress})")
    new_status = FinetuneStatus(status) if status is not None else None
    async with writing(session):
        run = (
            await session.scalars(
                select(FinetuneRun)
                .where(FinetuneRun.id == run_id, FinetuneRun.guild_id == guild_id)
                .with_for_update()
            )
        ).one_or_none()
        if run is None:
            raise FinetuneRunNotFound(run_id)
        current = FinetuneStatus(run.status)
        if current in FINISHED_STATUSES:
            raise FinetuneRunFinished(run_id, current.value)
        now = utcnow()
        if new_status is not None and new_status != current:
            if new_status not in _NEXT_STATUSES[current]:
                raise ValueError(
                    f"a {current.value} run cannot become {new_status.value} (run #{run_id})"
                )
            run.status = new_status.value
            if new_status == FinetuneStatus.RUNNING:
                run.started_at = now
            if new_status in FINISHED_STATUSES:
                run.finished_at = now
            if new_status == FinetuneStatus.SUCCEEDED:
                run.progress = 1.0
        if progress is not None and new_status != FinetuneStatus.SUCCEEDED:
            run.progress = progress
        if metrics:
            run.metrics = {**run.metrics, **metrics}
        if error is not None:
            run.error = error
        if model_version_id is not None:
            if not await session.scalar(
                select(ModelVersion.id).where(
                    ModelVersion.id == model_version_id, ModelVersion.guild_id == guild_id
                )
            ):
                raise ModelVersionNotFound(model_version_id)
            run.model_version_id = model_version_id
        run.updated_at = now
    return run


async def get_finetune_run(session: AsyncSession, *, guild_id: int, run_id: int) -> FinetuneRun:
    check_snowflake("guild_id", guild_id)
    check_id("run_id", run_id)
    async with reading(session):
        run = (
            await session.scalars(
                select(FinetuneRun).where(
                    FinetuneRun.id == run_id, FinetuneRun.guild_id == guild_id
                )
            )
        ).one_or_none()
    if run is None:
        raise FinetuneRunNotFound(run_id)
    return run


async def get_latest_finetune_run(session: AsyncSession, *, guild_id: int) -> FinetuneRun | None:
    """The server's most recent run (for the status command), or None if it never had one."""
    check_snowflake("guild_id", guild_id)
    async with reading(session):
        return (
            await session.scalars(
                select(FinetuneRun)
                .where(FinetuneRun.guild_id == guild_id)
                .order_by(FinetuneRun.created_at.desc(), FinetuneRun.id.desc())
                .limit(1)
            )
        ).one_or_none()


async def count_new_finetune_material(session: AsyncSession, *, guild_id: int) -> int:
    """Seeds saved plus votes cast on the server since its latest run was created (since
    ever, if it never had one): what an automatic fine-tune waits for. A vote that moves
    counts once, when it was first cast."""
    check_snowflake("guild_id", guild_id)
    async with reading(session):
        since = await session.scalar(
            select(FinetuneRun.created_at)
            .where(FinetuneRun.guild_id == guild_id)
            .order_by(FinetuneRun.created_at.desc(), FinetuneRun.id.desc())
            .limit(1)
        )
        seeds = select(func.count()).select_from(Seed).where(Seed.guild_id == guild_id)
        votes = (
            select(func.count())
            .select_from(Vote)
            .join(Composition, Composition.id == Vote.composition_id)
            .where(Composition.guild_id == guild_id)
        )
        if since is not None:
            seeds = seeds.where(Seed.created_at > since)
            votes = votes.where(Vote.created_at > since)
        return int(await session.scalar(seeds) or 0) + int(await session.scalar(votes) or 0)


async def fail_interrupted_finetune_runs(
    session: AsyncSession, *, error: str = INTERRUPTED_ERROR
) -> int:
    """Mark every queued or running run of every server as failed; returns how many.

    For start-up only, before any run starts: a run the previous process left in progress
    will never report again, and would block the server's next run forever.
    """
    now = utcnow()
    async with writing(session):
        result = await session.execute(
            update(FinetuneRun)
            .where(FinetuneRun.status.in_([s.value for s in ACTIVE_FINETUNE_STATUSES]))
            .values(
                status=FinetuneStatus.FAILED.value, error=error, finished_at=now, updated_at=now
            )
        )
    return int(result.rowcount)  # type: ignore[attr-defined]
