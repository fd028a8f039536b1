"""A server's model versions: record a fine-tuned version (by the engine's id), choose which one
serves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.errors import (
    ModelVersionNotFound,
    ModelVersionPruned,
    ModelVersionRejected,
    NoEarlierModelVersion,
)
from bot.db.models import Guild, ModelVersion, ModelVersionStatus
from bot.db.queries._tx import check_id, check_snowflake, ensure_guild, lock_guild, reading, writing


async def add_model_version(
    session: AsyncSession,
    *,
    guild_id: int,
    engine_id: str,
    parent_id: int | None = None,
    metrics: Mapping[str, Any] | None = None,
    status: ModelVersionStatus = ModelVersionStatus.READY,
) -> ModelVersion:
    """Record a version fine-tuned for the server (not activated: see activate).

    `parent_id` is the version it was tuned from (None: the base model); `status` says
    whether it passed the quality gate.
    """
    version = new_model_version(
        guild_id=guild_id,
        engine_id=engine_id,
        parent_id=parent_id,
        metrics=metrics,
        status=status,
    )
    async with writing(session):
        await insert_model_version(session, version)
    return version


def new_model_version(
    *,
    guild_id: int,
    engine_id: str,
    parent_id: int | None,
    metrics: Mapping[str, Any] | None,
    status: ModelVersionStatus,
) -> ModelVersion:
    """A version row, checked, not yet stored (see insert_model_version)."""
    check_snowflake("guild_id", guild_id)
    if not engine_id:
        raise ValueError("a model version needs the engine's engine_id (received an empty one)")
    return ModelVersion(
        guild_id=guild_id,
        engine_id=engine_id,
        parent_id=parent_id,
        metrics=dict(metrics or {}),
        status=ModelVersionStatus(status).value,
    )


async def insert_model_version(session: AsyncSession, version: ModelVersion) -> None:
    """Store `version` within the caller's transaction (its parent must be the server's);
    it has its id on return."""
    await ensure_guild(session, version.guild_id)
    if version.parent_id is not None:
        await _get(session, version.guild_id, version.parent_id)
    session.add(version)
    await session.flush()


async def list_model_versions(
    session: AsyncSession, *, guild_id: int, limit: int | None = None
) -> list[ModelVersion]:
    """The server's versions, newest first."""
    check_snowflake("guild_id", guild_id)
    query = (
        select(ModelVersion)
        .where(ModelVersion.guild_id == guild_id)
        .order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
    )
    if limit is not None:
        query = query.limit(limit)
    async with reading(session):
        return list((await session.scalars(query)).all())


async def get_model_version(
    session: AsyncSession, *, guild_id: int, version_id: int
) -> ModelVersion:
    check_snowflake("guild_id", guild_id)
    async with reading(session):
        return await _get(session, guild_id, version_id)


async def get_active_model_version(session: AsyncSession, *, guild_id: int) -> ModelVersion | None:
    """The version that serves the server's compositions; None means the base model."""
    check_snowflake("guild_id", guild_id)
    async with reading(session):
        return (
            await session.scalars(
                select(ModelVersion)
                .join(Guild, Guild.active_model_version_id == ModelVersion.id)
                .where(Guild.id == guild_id, ModelVersion.guild_id == guild_id)
            )
        ).one_or_none()


async def activate_model_version(
    session: AsyncSession, *, guild_id: int, version_id: int | None
) -> ModelVersion | None:
    """Serve the server's compositions with `version_id` (None: the base model).

    ModelVersionNotFound if it is not this server's, ModelVersionRejected if it failed the
    quality gate, ModelVersionPruned if its checkpoint is gone.
    """
    check_snowflake("guild_id", guild_id)
    async with writing(session):
        return await activate_in_transaction(session, guild_id, version_id)


async def activate_in_transaction(
    session: AsyncSession, guild_id: int, version_id: int | None
) -> ModelVersion | None:
    """activate_model_version's work, within the caller's transaction."""
    guild = await lock_guild(session, guild_id)
    version = None
    if version_id is not None:
        version = await _get(session, guild_id, version_id)
        if version.status == ModelVersionStatus.PRUNED:
            raise ModelVersionPruned(version_id)
        if version.status != ModelVersionStatus.READY:
            raise ModelVersionRejected(version_id)
    guild.active_model_version_id = version_id
    return version


async def rollback_model_version(session: AsyncSession, *, guild_id: int) -> ModelVersion | None:
    """Go back to the version the active one was tuned from (None: the base model),
    skipping ancestors that cannot serve (rejected or pruned).

    NoEarlierModelVersion when the server already uses the base model. To jump further back,
    activate that version directly.
    """
    check_snowflake("guild_id", guild_id)
    async with writing(session):
        guild = await lock_guild(session, guild_id)
        if guild.active_model_version_id is None:
            raise NoEarlierModelVersion()
        current = await _get(session, guild_id, guild.active_model_version_id)
        previous = None
        parent_id = current.parent_id
        # Skip ancestors that cannot serve; parent ids only point to older versions, so the
        # walk ends.
        while parent_id is not None:
            previous = await _get(session, guild_id, parent_id)
            if previous.status == ModelVersionStatus.READY:
                break
            parent_id, previous = previous.parent_id, None
        guild.active_model_version_id = previous.id if previous else None
    return previous


async def mark_model_versions_pruned(
    session: AsyncSession, *, guild_id: int, engine_ids: Sequence[str]
) -> int:
    """Record that the engine deleted these versions of the server: its ready versions with
    those engine ids become pruned (never served again; their figures stay). Rejected versions
    keep their status, and the active version is never touched (its checkpoint is always
    kept). Returns how many versions changed."""
    check_snowflake("guild_id", guild_id)
    if not engine_ids:
        return 0
    async with writing(session):
        return await mark_pruned_in_transaction(session, guild_id, engine_ids)


async def mark_pruned_in_transaction(
    session: AsyncSession, guild_id: int, engine_ids: Sequence[str]
) -> int:
    """mark_model_versions_pruned's work, within the caller's transaction."""
    if not engine_ids:
        return 0
    active_id = await session.scalar(
        select(Guild.active_model_version_id).where(Guild.id == guild_id)
    )
    query = update(ModelVersion).where(
        ModelVersion.guild_id == guild_id,
        ModelVersion.engine_id.in_(list(engine_ids)),
        ModelVersion.status == ModelVersionStatus.READY.value,
    )
    if active_id is not None:
        query = query.where(ModelVersion.id != active_id)
    result = await session.execute(query.values(status=ModelVersionStatus.PRUNED.value))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def _get(session: AsyncSession, guild_id: int, version_id: int) -> ModelVersion:
    check_id("version_id", version_id)
    version = (
        await session.scalars(
            select(ModelVersion).where(
                ModelVersion.id == version_id, ModelVersion.guild_id == guild_id
            )
        )
    ).one_or_none()
    if version is None:
        raise ModelVersionNotFound(version_id)
    return version
