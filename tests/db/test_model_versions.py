"""Model versions: add, list, activate, roll back, prune."""

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
    mark_model_versions_pruned,
    rollback_model_version,
)
from bot.db.errors import (
    ModelVersionNotFound,
    ModelVersionPruned,
    ModelVersionRejected,
    NoEarlierModelVersion,
)

from .helpers import GUILD_A, ON_SESSION_LOOP

pytestmark = ON_SESSION_LOOP


async def test_add_list_get(session: AsyncSession) -> None:
    v1 = await add_model_version(
        session, guild_id=GUILD_A, engine_id="1/1", metrics={"nll_bits_per_note": 3.2}
    )
    v2 = await add_model_version(session, guild_id=GUILD_A, engine_id="1/2", parent_id=v1.id)
    assert (v1.status, v1.parent_id, v2.parent_id) == ("ready", None, v1.id)
    assert [v.id for v in await list_model_versions(session, guild_id=GUILD_A)] == [v2.id, v1.id]
    assert [v.id for v in await list_model_versions(session, guild_id=GUILD_A, limit=1)] == [v2.id]
    got = await get_model_version(session, guild_id=GUILD_A, version_id=v1.id)
    assert (got.engine_id, got.metrics) == ("1/1", {"nll_bits_per_note": 3.2})
    with pytest.raises(ModelVersionNotFound):
        await add_model_version(session, guild_id=GUILD_A, engine_id="1/x", parent_id=10**6)
    with pytest.raises(ValueError, match="engine_id"):
        await add_model_version(session, guild_id=GUILD_A, engine_id="")


async def test_activate_and_roll_back_along_the_lineage(session: AsyncSession) -> None:
    assert await get_active_model_version(session, guild_id=GUILD_A) is None  # base model
    v1 = await add_model_version(session, guild_id=GUILD_A, engine_id="1/1")
    v2 = await add_model_version(session, guild_id=GUILD_A, engine_id="1/2", parent_id=v1.id)
    v3 = await add_model_version(session, guild_id=GUILD_A, engine_id="1/3", parent_id=v2.id)
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
    v1 = await add_model_version(session, guild_id=GUILD_A, engine_id="1/1")
    bad = await add_model_version(
        session,
        guild_id=GUILD_A,
        engine_id="1/bad",
        parent_id=v1.id,
        status=ModelVersionStatus.REJECTED,
    )
    v3 = await add_model_version(session, guild_id=GUILD_A, engine_id="1/3", parent_id=bad.id)
    with pytest.raises(ModelVersionRejected):
        await activate_model_version(session, guild_id=GUILD_A, version_id=bad.id)
    await activate_model_version(session, guild_id=GUILD_A, version_id=v3.id)
    back = await rollback_model_version(session, guild_id=GUILD_A)
    assert back is not None and back.id == v1.id  # skipped the rejected parent
    with pytest.raises(ModelVersionNotFound):
        await activate_model_version(session, guild_id=GUILD_A, version_id=10**6)
    assert (await get_active_model_version(session, guild_id=GUILD_A)).id == v1.id  # type: ignore[union-attr]


async def test_pruned_versions_never_serve_and_rollback_skips_them(session: AsyncSession) -> None:
    v1 = await add_model_version(session, guild_id=GUILD_A, engine_id="1/1")
    v2 = await add_model_version(session, guild_id=GUILD_A, engine_id="1/2", parent_id=v1.id)
    bad = await add_model_version(
        session,
        guild_id=GUILD_A,
        engine_id="1/bad",
        parent_id=v2.id,
        status=ModelVersionStatus.REJECTED,
    )
    v4 = await add_model_version(session, guild_id=GUILD_A, engine_id="1/4", parent_id=v2.id)
    await activate_model_version(session, guild_id=GUILD_A, version_id=v4.id)

    # The engine deleted v2's, the rejected one's and (wrongly) the active one's checkpoint:
    # only the ready, inactive v2 becomes pruned.
    engine_ids = ["1/2", "1/bad", "1/4", "1/unknown"]
    assert await mark_model_versions_pruned(session, guild_id=GUILD_A, engine_ids=engine_ids) == 1
    statuses = {v.id: v.status for v in await list_model_versions(session, guild_id=GUILD_A)}
    assert statuses == {v1.id: "ready", v2.id: "pruned", bad.id: "rejected", v4.id: "ready"}
    assert await mark_model_versions_pruned(session, guild_id=GUILD_A, engine_ids=[]) == 0

    with pytest.raises(ModelVersionPruned, match="deleted"):
        await activate_model_version(session, guild_id=GUILD_A, version_id=v2.id)
    back = await rollback_model_version(session, guild_id=GUILD_A)
    assert back is not None and back.id == v1.id  # skipped the pruned parent
