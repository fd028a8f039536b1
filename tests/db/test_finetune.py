"""Fine-tuning runs: one in progress per server, progress reports, the latest run, and
the new material an automatic run waits for."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import (
    FinetuneRun,
    FinetuneStatus,
    activate_model_version,
    add_model_version,
    add_seed,
    cast_vote,
    count_new_finetune_material,
    create_finetune_run,
    fail_abandoned_finetune_runs,
    get_active_model_version,
    get_finetune_run,
    get_latest_finetune_run,
    get_model_version,
    list_model_versions,
    record_finetune_result,
    renew_finetune_lease,
    update_finetune_run,
)
from bot.db.errors import (
    FinetuneAlreadyRunning,
    FinetuneRunFinished,
    FinetuneRunNotFound,
    ModelVersionNotFound,
)
from bot.db.queries.finetune import RUN_LEASE_SECONDS
from bot.db.types import utcnow

from .helpers import (
    ALICE,
    BOB,
    CHANNEL,
    GUILD_A,
    GUILD_B,
    ON_SESSION_LOOP,
    fake_midi,
    make_composition,
)

pytestmark = ON_SESSION_LOOP

GUILD_C = 1_105_000_000_000_000_003
# Two bot processes sharing the database, as FinetuneRunner names them.
PROCESS_A = "host-a:101:0f0f0f0f"
PROCESS_B = "host-b:202:1e1e1e1e"


async def test_a_run_from_queue_to_success(session: AsyncSession) -> None:
    assert await get_latest_finetune_run(session, guild_id=GUILD_A) is None
    run = await create_finetune_run(session, guild_id=GUILD_A, requester_id=ALICE)
    assert (run.status, run.progress, run.metrics, run.started_at) == ("queued", 0.0, {}, None)

    running = await update_finetune_run(
        session, guild_id=GUILD_A, run_id=run.id, status=FinetuneStatus.RUNNING, progress=0.25
    )
    assert (running.status, running.progress) == ("running", 0.25)
    assert running.started_at is not None and running.finished_at is None

    await update_finetune_run(
        session, guild_id=GUILD_A, run_id=run.id, progress=0.5, metrics={"loss": 2.0}
    )
    version = await add_model_version(session, guild_id=GUILD_A, engine_id="1/ft")
    done = await update_finetune_run(
        session,
        guild_id=GUILD_A,
        run_id=run.id,
        status=FinetuneStatus.SUCCEEDED,
        metrics={"nll_bits_per_note": 2.9},
        model_version_id=version.id,
    )
    assert (done.status, done.progress, done.model_version_id) == ("succeeded", 1.0, version.id)
    assert done.metrics == {"loss": 2.0, "nll_bits_per_note": 2.9}  # merged
    assert done.finished_at is not None and done.finished_at >= done.started_at  # type: ignore[operator]

    latest = await get_latest_finetune_run(session, guild_id=GUILD_A)
    assert latest is not None and (latest.id, latest.status) == (run.id, "succeeded")
    fetched = await get_finetune_run(session, guild_id=GUILD_A, run_id=run.id)
    assert fetched.requester_id == ALICE

    with pytest.raises(FinetuneRunFinished, match="already succeeded"):
        await update_finetune_run(session, guild_id=GUILD_A, run_id=run.id, progress=0.1)


async def test_one_run_in_progress_per_server(session: AsyncSession) -> None:
    first = await create_finetune_run(session, guild_id=GUILD_A)
    with pytest.raises(FinetuneAlreadyRunning) as error:
        await create_finetune_run(session, guild_id=GUILD_A)
    assert error.value.run_id == first.id
    await create_finetune_run(session, guild_id=GUILD_B)  # another server is not blocked

    await update_finetune_run(
        session, guild_id=GUILD_A, run_id=first.id, status=FinetuneStatus.FAILED, error="OOM"
    )
    second = await create_finetune_run(session, guild_id=GUILD_A)
    latest = await get_latest_finetune_run(session, guild_id=GUILD_A)
    assert latest is not None and latest.id == second.id
    failed = await get_finetune_run(session, guild_id=GUILD_A, run_id=first.id)
    assert (failed.status, failed.error) == ("failed", "OOM")


async def test_concurrent_requests_start_one_run(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def request() -> FinetuneRun | FinetuneAlreadyRunning:
        async with sessions() as session:
            try:
                return await create_finetune_run(session, guild_id=GUILD_A)
            except FinetuneAlreadyRunning as exc:
                return exc

    outcomes = await asyncio.gather(*(request() for _ in range(10)))
    runs = [o for o in outcomes if isinstance(o, FinetuneRun)]
    assert len(runs) == 1
    assert all(o.run_id == runs[0].id for o in outcomes if isinstance(o, FinetuneAlreadyRunning))


async def test_bad_updates_are_refused(session: AsyncSession) -> None:
    run = await create_finetune_run(session, guild_id=GUILD_A)
    await update_finetune_run(
        session, guild_id=GUILD_A, run_id=run.id, status=FinetuneStatus.RUNNING
    )
    with pytest.raises(ValueError, match="running run cannot become queued"):
        await update_finetune_run(
            session, guild_id=GUILD_A, run_id=run.id, status=FinetuneStatus.QUEUED
        )
    with pytest.raises(ValueError, match="received 1.5"):
        await update_finetune_run(session, guild_id=GUILD_A, run_id=run.id, progress=1.5)
    with pytest.raises(ValueError):
        await update_finetune_run(session, guild_id=GUILD_A, run_id=run.id, status="paused")  # type: ignore[arg-type]
    with pytest.raises(ModelVersionNotFound):
        await update_finetune_run(session, guild_id=GUILD_A, run_id=run.id, model_version_id=10**6)
    with pytest.raises(FinetuneRunNotFound):
        await update_finetune_run(session, guild_id=GUILD_A, run_id=10**6, progress=0.5)
    unchanged = await get_finetune_run(session, guild_id=GUILD_A, run_id=run.id)
    assert (unchanged.status, unchanged.progress, unchanged.model_version_id) == (
        "running",
        0.0,
        None,
    )


async def test_restart_fails_the_runs_left_in_progress(session: AsyncSession) -> None:
    a = await create_finetune_run(session, guild_id=GUILD_A)
    await update_finetune_run(session, guild_id=GUILD_A, run_id=a.id, status=FinetuneStatus.RUNNING)
    await create_finetune_run(session, guild_id=GUILD_B)
    assert await fail_abandoned_finetune_runs(session) == 2
    after = await get_finetune_run(session, guild_id=GUILD_A, run_id=a.id)
    assert after.status == "failed" and after.error and "restarted" in after.error
    assert after.finished_at is not None
    assert await fail_abandoned_finetune_runs(session) == 0
    await create_finetune_run(session, guild_id=GUILD_A)  # no longer blocked


async def rewind_heartbeat(session: AsyncSession, run_id: int, seconds: float) -> None:
    """As if the run's owner had last renewed its lease `seconds` ago."""
    async with session.begin():
        await session.execute(
            update(FinetuneRun)
            .where(FinetuneRun.id == run_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


async def test_recovery_claims_only_runs_whose_owner_is_gone(session: AsyncSession) -> None:
    # Guild A's run belongs to a live process (it just renewed its lease); guild B's owner
    # went silent 10 minutes ago; guild C's run is from before runs had owners.
    live = await create_finetune_run(session, guild_id=GUILD_A, owner=PROCESS_A)
    await update_finetune_run(
        session, guild_id=GUILD_A, run_id=live.id, status=FinetuneStatus.RUNNING
    )
    await rewind_heartbeat(session, live.id, RUN_LEASE_SECONDS - 30)
    assert await renew_finetune_lease(session, guild_id=GUILD_A, run_id=live.id, owner=PROCESS_A)
    silent = await create_finetune_run(session, guild_id=GUILD_B, owner=PROCESS_B)
    await rewind_heartbeat(session, silent.id, 600)
    ownerless = await create_finetune_run(session, guild_id=GUILD_C)

    # A second bot process starts on this database.
    assert await fail_abandoned_finetune_runs(session) == 2
    statuses = {
        run.id: (await get_finetune_run(session, guild_id=guild, run_id=run.id)).status
        for guild, run in ((GUILD_A, live), (GUILD_B, silent), (GUILD_C, ownerless))
    }
    assert statuses == {live.id: "running", silent.id: "failed", ownerless.id: "failed"}
    # Only the owner renews its lease, and only while the run is in progress.
    assert not await renew_finetune_lease(
        session, guild_id=GUILD_A, run_id=live.id, owner=PROCESS_B
    )
    assert not await renew_finetune_lease(
        session, guild_id=GUILD_B, run_id=silent.id, owner=PROCESS_B
    )
    # The live run goes on to its result.
    version, _ = await record_finetune_result(
        session,
        guild_id=GUILD_A,
        run_id=live.id,
        engine_id="1/a",
        parent_id=None,
        metrics={},
        accepted=True,
    )
    assert (await get_active_model_version(session, guild_id=GUILD_A)).id == version.id  # type: ignore[union-attr]


async def test_a_result_is_recorded_whole_in_one_transaction(session: AsyncSession) -> None:
    old = await add_model_version(session, guild_id=GUILD_A, engine_id="1/old")
    await activate_model_version(session, guild_id=GUILD_A, version_id=old.id)
    run = await create_finetune_run(session, guild_id=GUILD_A, owner=PROCESS_A)
    await update_finetune_run(
        session, guild_id=GUILD_A, run_id=run.id, status=FinetuneStatus.RUNNING
    )
    version, pruned = await record_finetune_result(
        session,
        guild_id=GUILD_A,
        run_id=run.id,
        engine_id="1/new",
        parent_id=old.id,
        metrics={"gate_reason": "better"},
        accepted=True,
        pruned=["1/old"],
    )
    assert (version.status, version.parent_id, version.metrics) == (
        "ready",
        old.id,
        {"gate_reason": "better"},
    )
    done = await get_finetune_run(session, guild_id=GUILD_A, run_id=run.id)
    assert (done.status, done.progress, done.model_version_id) == ("succeeded", 1.0, version.id)
    assert done.metrics == {"gate_reason": "better"}
    assert (await get_active_model_version(session, guild_id=GUILD_A)).id == version.id  # type: ignore[union-attr]
    assert pruned == 1
    assert (
        await get_model_version(session, guild_id=GUILD_A, version_id=old.id)
    ).status == "pruned"


async def test_a_result_of_a_run_ended_meanwhile_changes_nothing(session: AsyncSession) -> None:
    run = await create_finetune_run(session, guild_id=GUILD_A, owner=PROCESS_A)
    await update_finetune_run(
        session, guild_id=GUILD_A, run_id=run.id, status=FinetuneStatus.RUNNING
    )
    # Its owner went silent past its lease; another process failed it.
    await rewind_heartbeat(session, run.id, RUN_LEASE_SECONDS + 1)
    assert await fail_abandoned_finetune_runs(session) == 1
    # Then the owner comes back with a result: nothing of it is recorded, nothing serves.
    with pytest.raises(FinetuneRunFinished, match="already failed"):
        await record_finetune_result(
            session,
            guild_id=GUILD_A,
            run_id=run.id,
            engine_id="1/late",
            parent_id=None,
            metrics={},
            accepted=True,
        )
    assert await list_model_versions(session, guild_id=GUILD_A) == []
    assert await get_active_model_version(session, guild_id=GUILD_A) is None
    # A step that fails half-way (its parent is not this server's) leaves no part behind.
    again = await create_finetune_run(session, guild_id=GUILD_A, owner=PROCESS_A)
    with pytest.raises(ModelVersionNotFound):
        await record_finetune_result(
            session,
            guild_id=GUILD_A,
            run_id=again.id,
            engine_id="1/orphan",
            parent_id=10**6,
            metrics={},
            accepted=True,
        )
    assert await list_model_versions(session, guild_id=GUILD_A) == []
    assert (await get_finetune_run(session, guild_id=GUILD_A, run_id=again.id)).status == "queued"


async def test_a_run_remembers_where_to_announce(session: AsyncSession) -> None:
    run = await create_finetune_run(
        session, guild_id=GUILD_A, requester_id=ALICE, channel_id=CHANNEL
    )
    fetched = await get_finetune_run(session, guild_id=GUILD_A, run_id=run.id)
    assert (fetched.channel_id, fetched.requester_id) == (CHANNEL, ALICE)
    automatic = await create_finetune_run(session, guild_id=GUILD_B)
    assert (automatic.channel_id, automatic.requester_id) == (None, None)


async def test_new_material_counts_seeds_and_votes_since_the_latest_run(
    session: AsyncSession,
) -> None:
    assert await count_new_finetune_material(session, guild_id=GUILD_A) == 0
    await add_seed(session, guild_id=GUILD_A, name="a", uploader_id=ALICE, midi=fake_midi())
    composition = await make_composition(session)
    first, second = composition.candidates[0].id, composition.candidates[1].id
    for user in (ALICE, BOB):
        await cast_vote(
            session,
            guild_id=GUILD_A,
            composition_id=composition.id,
            candidate_id=first,
            user_id=user,
        )
    assert await count_new_finetune_material(session, guild_id=GUILD_A) == 3
    assert await count_new_finetune_material(session, guild_id=GUILD_B) == 0

    run = await create_finetune_run(session, guild_id=GUILD_A)
    assert await count_new_finetune_material(session, guild_id=GUILD_A) == 0
    # A vote that moves is not new material; a new seed is, whatever the run's outcome.
    await cast_vote(
        session, guild_id=GUILD_A, composition_id=composition.id, candidate_id=second, user_id=BOB
    )
    await add_seed(session, guild_id=GUILD_A, name="b", uploader_id=BOB, midi=fake_midi())
    await update_finetune_run(
        session, guild_id=GUILD_A, run_id=run.id, status=FinetuneStatus.FAILED, error="x"
    )
    assert await count_new_finetune_material(session, guild_id=GUILD_A) == 1
