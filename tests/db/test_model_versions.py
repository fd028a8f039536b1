"""Model versions: add, list, activate, roll back."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import (
    ModelVersionStatus,
    activate_model_version,
    add_model_version,
    get_active_model_version,
    get_model_version,
    list_model_versions,
    rollback_model_version,
)
from bot.db.errors import ModelVersionNotFound, ModelVersionRejected, NoEarlierModelVersion

from .helpers import GUILD_A, ON_SESSION_LOOP

pytestmark = ON_SESSION_LOOP


async def test_add_list_get(session: AsyncSession) -> None:
    v1 = await add_model_version(
        session, guild_id=GUILD_A, path="/ckpt/1.pt", metrics={"nll_bits_per_note": 3.2}
    )
    v2 = await add_model_version(session, guild_id=GUILD_A, path="/ckpt/2.pt", parent_id=v1.id)
    assert (v1.status, v1.parent_id, v2.parent_id) == ("ready", None, v1.id)
    assert [v.id for v in await list_model_versions(session, guild_id=GUILD_A)] == [v2.id, v1.id]
    assert [v.id for v in await list_model_versions(session, guild_id=GUILD_A, limit=1)] == [v2.id]
    got = await get_model_version(session, guild_id=GUILD_A, version_id=v1.id)
    assert (got.path, got.metrics) == ("/ckpt/1.pt", {"nll_bits_per_note": 3.2})
    with pytest.raises(ModelVersionNotFound):
        await add_model_version(session, guild_id=GUILD_A, path="/x.pt", parent_id=10**6)
    with pytest.raises(ValueError, match="path"):
        await add_model_version(session, guild_id=GUILD_A, path="")


async def test_activate_and_roll_back_along_the_lineage(session: AsyncSession) -> None:
    assert await get_active_model_version(session, guild_id=GUILD_A) is None  # base model
    v1 = await add_model_version(session, guild_id=GUILD_A, path="/1.pt")
    v2 = await add_model_version(session, guild_id=GUILD_A, path="/2.pt", parent_id=v1.id)
    v3 = await add_model_version(session, guild_id=GUILD_A, path="/3.pt", parent_id=v2.id)
    assert await get_active_model_version(session, guild_id=GUILD_A) is None  # added != active

    activated = await activate_model_version(session, guild_id=GUILD_A, version_id=v3.id)
    assert activated is not None and activated.id == v3.id
    assert (await get_active_model_version(session, guild_id=GUILD_A)).id == v3.id  # type: ignore[union-attr]

    back = await rollback_model_version(session, guild_id=GUILD_A)
    assert back is not None and back.id == v2.id
    back = await rollback_model_version(session, guild_id=GUILD_A)
    assert back is not None and back.id == v1.id
    assert await rollback_model_version(session, guild_id=GUILD_A) is None  # to the base model
    assert await get_active_model_version(session, guild_id=GUILD_A) is None
    with pytest.raises(NoEarlierModelVersion):
        await rollback_model_version(session, guild_id=GUILD_A)

    # Any ready version can be chosen directly, and the base model too.
    await activate_model_version(session, guild_id=GUILD_A, version_id=v2.id)
    assert (await get_active_model_version(session, guild_id=GUILD_A)).id == v2.id  # type: ignore[union-attr]
    assert await activate_model_version(session, guild_id=GUILD_A, version_id=None) is None
    assert await get_active_model_version(session, guild_id=GUILD_A) is None


async def test_rejected_versions_never_serve(session: AsyncSession) -> None:
    v1 = await add_model_version(session, guild_id=GUILD_A, path="/1.pt")
    bad = await add_model_version(
        session,
        guild_id=GUILD_A,
        path="/bad.pt",
        parent_id=v1.id,
        status=ModelVersionStatus.REJECTED,
    )
    v3 = await add_model_version(session, guild_id=GUILD_A, path="/3.pt", parent_id=bad.id)
    with pytest.raises(ModelVersionRejected):
        await activate_model_version(session, guild_id=GUILD_A, version_id=bad.id)
    await activate_model_version(session, guild_id=GUILD_A, version_id=v3.id)
    back = await rollback_model_version(session, guild_id=GUILD_A)
    assert back is not None and back.id == v1.id  # skipped the rejected parent
    with pytest.raises(ModelVersionNotFound):
        await activate_model_version(session, guild_id=GUILD_A, version_id=10**6)
    assert (await get_active_model_version(session, guild_id=GUILD_A)).id == v1.id  # type: ignore[union-attr]
