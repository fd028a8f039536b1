"""Server isolation: a second server sees and touches nothing of the first, by every query.
And forgetting a server removes all of it and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import bot.db
from bot.db import (
    Base,
    Composition,
    FinetuneRun,
    ModelVersion,
    Seed,
    activate_model_version,
    add_model_version,
    add_seed,
    autocomplete_seed_names,
    cast_vote,
    count_new_finetune_material,
    create_finetune_run,
    delete_composition,
    export_finetune_data,
    fail_abandoned_finetune_runs,
    forget_guild,
    get_active_model_version,
    get_candidate,
    get_composition,
    get_finetune_run,
    get_latest_finetune_run,
    get_member_vote,
    get_model_version,
    get_piece,
    get_seed,
    get_seed_by_id,
    get_tallies,
    list_model_versions,
    list_seeds,
    mark_model_versions_pruned,
    record_finetune_result,
    remove_seed,
    renew_finetune_lease,
    rollback_model_version,
    save_candidate_as_seed,
    set_composition_message,
    top_candidates,
    update_finetune_run,
)
from bot.db.errors import NoEarlierModelVersion, NotFound

from .helpers import (
    ALICE,
    BOB,
    GUILD_A,
    GUILD_B,
    ON_SESSION_LOOP,
    fake_midi,
    make_composition,
)


@dataclass
class Material:
    seed: Seed
    root: Composition
    child: Composition
    version: ModelVersion
    run: FinetuneRun


async def populate(session: AsyncSession, guild_id: int) -> Material:
    seed = await add_seed(
        session, guild_id=guild_id, name="theme", uploader_id=ALICE, midi=fake_midi()
    )
    version = await add_model_version(session, guild_id=guild_id, engine_id=f"{guild_id}/v1")
    await activate_model_version(session, guild_id=guild_id, version_id=version.id)
    root = await make_composition(
        session, guild_id, seed_id=seed.id, seed_midi=seed.midi, model_version_id=version.id
    )
    child = await make_composition(session, guild_id, parent_candidate_id=root.candidates[0].id)
    for composition in (root, child):
        await set_composition_message(
            session,
            guild_id=guild_id,
            composition_id=composition.id,
            message_id=composition.id + 10**15,
        )
        await cast_vote(
            session,
            guild_id=guild_id,
            composition_id=composition.id,
            candidate_id=composition.candidates[0].id,
            user_id=ALICE,
        )
    run = await create_finetune_run(session, guild_id=guild_id)
    return Material(seed, root, child, version, run)


# Each entry: how guild B would reach guild A's material. All must fail with NotFound.
FOREIGN_LOOKUPS = {
    "get_seed": lambda s, a: get_seed(s, guild_id=GUILD_B, name=a.seed.name),
    "get_seed_by_id": lambda s, a: get_seed_by_id(s, guild_id=GUILD_B, seed_id=a.seed.id),
    "remove_seed": lambda s, a: remove_seed(s, guild_id=GUILD_B, name=a.seed.name),
    "save_candidate_as_seed": lambda s, a: save_candidate_as_seed(
        s, guild_id=GUILD_B, candidate_id=a.root.candidates[0].id, name="stolen", uploader_id=BOB
    ),
    "get_composition": lambda s, a: get_composition(s, guild_id=GUILD_B, composition_id=a.root.id),
    "get_candidate": lambda s, a: get_candidate(
        s, guild_id=GUILD_B, candidate_id=a.root.candidates[0].id
    ),
    "set_composition_message": lambda s, a: set_composition_message(
        s, guild_id=GUILD_B, composition_id=a.root.id, message_id=12345
    ),
    "get_piece": lambda s, a: get_piece(s, guild_id=GUILD_B, composition_id=a.child.id),
    "cast_vote": lambda s, a: cast_vote(
        s,
        guild_id=GUILD_B,
        composition_id=a.root.id,
        candidate_id=a.root.candidates[1].id,
        user_id=BOB,
    ),
    "get_tallies": lambda s, a: get_tallies(s, guild_id=GUILD_B, composition_id=a.root.id),
    "get_model_version": lambda s, a: get_model_version(
        s, guild_id=GUILD_B, version_id=a.version.id
    ),
    "activate_model_version": lambda s, a: activate_model_version(
        s, guild_id=GUILD_B, version_id=a.version.id
    ),
    "add_model_version(parent)": lambda s, a: add_model_version(
        s, guild_id=GUILD_B, engine_id="1/b", parent_id=a.version.id
    ),
    "get_finetune_run": lambda s, a: get_finetune_run(s, guild_id=GUILD_B, run_id=a.run.id),
    "update_finetune_run": lambda s, a: update_finetune_run(
        s, guild_id=GUILD_B, run_id=a.run.id, progress=0.9
    ),
    "record_finetune_result": lambda s, a: record_finetune_result(
        s,
        guild_id=GUILD_B,
        run_id=a.run.id,
        engine_id="1/b",
        parent_id=None,
        metrics={},
        accepted=True,
    ),
    "delete_composition": lambda s, a: delete_composition(
        s, guild_id=GUILD_B, composition_id=a.root.id
    ),
    "record_composition(seed)": lambda s, a: make_composition(s, GUILD_B, seed_id=a.seed.id),
    "record_composition(parent)": lambda s, a: make_composition(
        s, GUILD_B, parent_candidate_id=a.root.candidates[0].id
    ),
    "record_composition(model)": lambda s, a: make_composition(
        s, GUILD_B, model_version_id=a.version.id
    ),
}


async def row_counts(session: AsyncSession) -> dict[str, int]:
    counts = {}
    async with session.begin():
        for table in Base.metadata.sorted_tables:
            counts[table.name] = await session.scalar(select(func.count()).select_from(table))
    return counts


@ON_SESSION_LOOP
@pytest.mark.parametrize("lookup", list(FOREIGN_LOOKUPS))
async def test_another_server_cannot_reach_anything(session: AsyncSession, lookup: str) -> None:
    a = await populate(session, GUILD_A)
    before = await row_counts(session)
    with pytest.raises(NotFound):
        await FOREIGN_LOOKUPS[lookup](session, a)
    assert await row_counts(session) == before


@ON_SESSION_LOOP
async def test_another_server_sees_nothing(session: AsyncSession) -> None:
    a = await populate(session, GUILD_A)
    assert await list_seeds(session, guild_id=GUILD_B) == []
    assert await autocomplete_seed_names(session, guild_id=GUILD_B, prefix="") == []
    assert await autocomplete_seed_names(session, guild_id=GUILD_B, prefix="th") == []
    assert (
        await get_member_vote(session, guild_id=GUILD_B, composition_id=a.root.id, user_id=ALICE)
        is None
    )
    assert await top_candidates(session, guild_id=GUILD_B) == []
    assert await list_model_versions(session, guild_id=GUILD_B) == []
    assert await get_active_model_version(session, guild_id=GUILD_B) is None
    with pytest.raises(NoEarlierModelVersion):
        await rollback_model_version(session, guild_id=GUILD_B)
    assert await get_latest_finetune_run(session, guild_id=GUILD_B) is None
    assert (await export_finetune_data(session, guild_id=GUILD_B)).is_empty
    assert await count_new_finetune_material(session, guild_id=GUILD_B) == 0
    assert (
        await mark_model_versions_pruned(
            session, guild_id=GUILD_B, engine_ids=[a.version.engine_id]
        )
        == 0
    )
    # A's run (it has no owner: abandoned) is neither renewed nor failed by B's calls.
    owner = "b-process"
    assert not await renew_finetune_lease(session, guild_id=GUILD_B, run_id=a.run.id, owner=owner)
    assert await fail_abandoned_finetune_runs(session, guild_id=GUILD_B) == 0
    assert (await get_finetune_run(session, guild_id=GUILD_A, run_id=a.run.id)).status == "queued"

    # Guild B may reuse guild A's seed names and bytes, and A's run does not block B's.
    await add_seed(session, guild_id=GUILD_B, name="theme", uploader_id=BOB, midi=a.seed.midi)
    await create_finetune_run(session, guild_id=GUILD_B)
    # And A still sees all of its own.
    assert [s.name for s in await list_seeds(session, guild_id=GUILD_A)] == ["theme"]
    kept = await get_model_version(session, guild_id=GUILD_A, version_id=a.version.id)
    assert kept.status == "ready"
    assert len(await top_candidates(session, guild_id=GUILD_A)) == 2
    assert (await get_active_model_version(session, guild_id=GUILD_A)).id == a.version.id  # type: ignore[union-attr]


def test_every_query_function_is_covered_here() -> None:
    # A new guild-scoped query must be added to this file's checks.
    checked = {name.split("(")[0] for name in FOREIGN_LOOKUPS} | {
        "list_seeds",
        "autocomplete_seed_names",
        "get_member_vote",
        "top_candidates",
        "list_model_versions",
        "get_active_model_version",
        "rollback_model_version",
        "get_latest_finetune_run",
        "export_finetune_data",
        "count_new_finetune_material",
        "mark_model_versions_pruned",
        "add_seed",
        "create_finetune_run",
        "forget_guild",
        "renew_finetune_lease",
        "fail_abandoned_finetune_runs",
        # Jams: tests/db/test_jams.py::test_another_server_cannot_reach_a_jam calls each of
        # these as another server.
        "create_jam",
        "get_active_jam",
        "get_jam",
        "get_jam_rounds",
        "add_jam_round",
        "cast_jam_vote",
        "everyone_back",
        "close_jam_round",
        "claim_jam_writer",
        "set_jam_writer",
        "pause_jam",
        "resume_jam",
        "end_jam",
        "jam_winners",
        # Every server's by design: the deadline checker's own sweeps, which name the guild.
        "due_jam_rounds",
        "stalled_jams",
        # Not server data: pure helpers.
        "winner_of",
        "midi_sha256",
        "normalize_seed_name",
    }
    functions = {
        name for name in bot.db.__all__ if name[0].islower() and callable(getattr(bot.db, name))
    } - {"create_engine", "create_sessionmaker", "errors"}
    assert functions - checked == set()


@ON_SESSION_LOOP
async def test_forgetting_a_server_removes_all_of_it_and_nothing_else(
    session: AsyncSession,
) -> None:
    await populate(session, GUILD_A)
    b = await populate(session, GUILD_B)
    per_server = await row_counts(session)

    assert await forget_guild(session, guild_id=GUILD_A) is True
    after = await row_counts(session)
    assert after["guild"] == 1
    for table in ("seed", "composition", "candidate", "vote", "model_version", "finetune_run"):
        assert after[table] * 2 == per_server[table], table
    assert (await get_active_model_version(session, guild_id=GUILD_B)).id == b.version.id  # type: ignore[union-attr]
    assert len(await get_piece(session, guild_id=GUILD_B, composition_id=b.child.id)) == 2
    assert await forget_guild(session, guild_id=GUILD_A) is False
