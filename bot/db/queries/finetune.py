"""Fine-tuning runs: at most one queued or running per server, and their progress."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
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
    RUN_OWNER_MAX_LENGTH,
    Composition,
    FinetuneRun,
    FinetuneStatus,
    ModelVersion,
    ModelVersionStatus,
    Seed,
    Vote,
)
from bot.db.queries._tx import check_id, check_snowflake, ensure_guild, reading, writing
from bot.db.queries.model_versions import (
    activate_in_transaction,
    insert_model_version,
    mark_pruned_in_transaction,
    new_model_version,
)
from bot.db.types import utcnow

FINISHED_STATUSES = (FinetuneStatus.SUCCEEDED, FinetuneStatus.FAILED, FinetuneStatus.CANCELLED)
# Which status may follow which; a finished run never changes again.
_NEXT_STATUSES = {
    FinetuneStatus.QUEUED: {FinetuneStatus.RUNNING, *FINISHED_STATUSES},
    FinetuneStatus.RUNNING: set(FINISHED_STATUSES),
}
INTERRUPTED_ERROR = (
    "interrupted: the bot restarted (or the process running it stopped) during the run"
)
# A run whose owner has not renewed its lease for this long is abandoned: its process is
# gone. The owner renews it every RUN_HEARTBEAT_SECONDS, so a few missed beats (a busy
# database, a pause) do not lose a live run.
RUN_LEASE_SECONDS = 90.0
RUN_HEARTBEAT_SECONDS = 15.0


async def create_finetune_run(
    session: AsyncSession,
    *,
    guild_id: int,
    requester_id: int | None = None,
    channel_id: int | None = None,
    owner: str | None = None,
) -> FinetuneRun:
    """Queue a fine-tuning run; FinetuneAlreadyRunning if the server has one in progress.

    `requester_id`: who asked (None: started automatically); `channel_id`: where its result
    is announced; `owner`: the bot process that will run it, whose lease starts now (it
    renews it with renew_finetune_lease while the run goes on).
    """
    check_snowflake("guild_id", guild_id)
    if requester_id is not None:
        check_snowflake("requester_id", requester_id)
    if channel_id is not None:
        check_snowflake("channel_id", channel_id)
    if owner is not None and not 0 < len(owner) <= RUN_OWNER_MAX_LENGTH:
        raise ValueError(
            f"owner must be 1 to {RUN_OWNER_MAX_LENGTH} characters (received {owner!r})"
        )
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
        owner=owner,
        heartbeat_at=now if owner is not None else None,
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
        run = await _locked_run(session, guild_id, run_id)
        now = utcnow()
        if new_status is not None:
            _move(run, new_status, now)
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


async def _locked_run(session: AsyncSession, guild_id: int, run_id: int) -> FinetuneRun:
    """The run, locked for this transaction; FinetuneRunFinished once it has finished."""
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
    return run


def _move(run: FinetuneRun, new_status: FinetuneStatus, now: datetime) -> None:
    """Change a run's status, stamping when it started or finished."""
    current = FinetuneStatus(run.status)
    if new_status == current:
        return
    if new_status not in _NEXT_STATUSES[current]:
        raise ValueError(f"a {current.value} run cannot become {new_status.value} (run #{run.id})")
    run.status = new_status.value
    if new_status == FinetuneStatus.RUNNING:
        run.started_at = now
    if new_status in FINISHED_STATUSES:
        run.finished_at = now
    if new_status == FinetuneStatus.SUCCEEDED:
        run.progress = 1.0


async def record_finetune_result(
    session: AsyncSession,
    *,
    guild_id: int,
    run_id: int,
    engine_id: str,
    parent_id: int | None,
    metrics: Mapping[str, Any],
    accepted: bool,
    pruned: Sequence[str] = (),
) -> tuple[ModelVersion, int]:
    """A run's outcome, in one transaction: the engine's new version (`engine_id`) becomes a
    version of the server (ready and serving if `accepted`, else rejected), the versions the
    engine deleted (`pruned`, engine ids) are marked pruned, and the run succeeds pointing at
    the version. All of it, or none: a run that has finished meanwhile (another process found
    it abandoned and failed it) raises FinetuneRunFinished and activates nothing. Returns the
    version and how many were pruned.
    """
    check_snowflake("guild_id", guild_id)
    check_id("run_id", run_id)
    status = ModelVersionStatus.READY if accepted else ModelVersionStatus.REJECTED
    version = new_model_version(
        guild_id=guild_id,
        engine_id=engine_id,
        parent_id=parent_id,
        metrics=metrics,
        status=status,
    )
    async with writing(session):
        run = await _locked_run(session, guild_id, run_id)
        await insert_model_version(session, version)
        if accepted:
            await activate_in_transaction(session, guild_id, version.id)
        pruned_count = await mark_pruned_in_transaction(session, guild_id, pruned)
        now = utcnow()
        _move(run, FinetuneStatus.SUCCEEDED, now)
        run.metrics = {**run.metrics, **metrics}
        run.model_version_id = version.id
        run.updated_at = now
    return version, pruned_count


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


async def renew_finetune_lease(
    session: AsyncSession, *, guild_id: int, run_id: int, owner: str
) -> bool:
    """The owner says its run is alive. False when the run is no longer its own in progress
    (it finished, or was failed as abandoned)."""
    check_snowflake("guild_id", guild_id)
    check_id("run_id", run_id)
    now = utcnow()
    async with writing(session):
        result = await session.execute(
            update(FinetuneRun)
            .where(
                FinetuneRun.id == run_id,
                FinetuneRun.guild_id == guild_id,
                FinetuneRun.owner == owner,
                FinetuneRun.status.in_([s.value for s in ACTIVE_FINETUNE_STATUSES]),
            )
            .values(heartbeat_at=now)
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def fail_abandoned_finetune_runs(
    session: AsyncSession,
    *,
    lease_seconds: float = RUN_LEASE_SECONDS,
    guild_id: int | None = None,
    error: str = INTERRUPTED_ERROR,
) -> int:
    """Fail the queued or running runs whose owner is gone: no owner at all, or a lease not
    renewed for `lease_seconds`. A live process's runs are left alone, so a second bot
    process on the same database (a restart overlapping the old one, or another shard) can
    call this at start-up. Every server's runs, or only `guild_id`'s. Returns how many."""
    if guild_id is not None:
        check_snowflake("guild_id", guild_id)
    now = utcnow()
    stale = now - timedelta(seconds=lease_seconds)
    query = update(FinetuneRun).where(
        FinetuneRun.status.in_([s.value for s in ACTIVE_FINETUNE_STATUSES]),
        or_(
            FinetuneRun.owner.is_(None),
            FinetuneRun.heartbeat_at.is_(None),
            FinetuneRun.heartbeat_at < stale,
        ),
    )
    if guild_id is not None:
        query = query.where(FinetuneRun.guild_id == guild_id)
    async with writing(session):
        result = await session.execute(
            query.values(
                status=FinetuneStatus.FAILED.value, error=error, finished_at=now, updated_at=now
            )
        )
    return int(result.rowcount)  # type: ignore[attr-defined]
