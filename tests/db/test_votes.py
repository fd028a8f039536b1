"""Votes: add, move, take back; tallies; the server's top candidates; and concurrency."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import Vote, cast_vote, get_member_vote, get_tallies, top_candidates
from bot.db.errors import CandidateNotFound, CompositionNotFound
from bot.db.types import utcnow

from .helpers import ALICE, BOB, GUILD_A, ON_SESSION_LOOP, make_composition

pytestmark = ON_SESSION_LOOP

CAROL = ALICE + 100
DAVE = ALICE + 200


async def test_click_adds_moves_and_takes_back(session: AsyncSession) -> None:
    composition = await make_composition(session, candidates=3)
    first, second, third = (c.id for c in composition.candidates)

    async def click(user: int, candidate: int):  # type: ignore[no-untyped-def]
        return await cast_vote(
            session,
            guild_id=GUILD_A,
            composition_id=composition.id,
            candidate_id=candidate,
            user_id=user,
        )

    added = await click(ALICE, first)
    assert (added.action, added.candidate_id) == ("added", first)
    assert added.tallies == {first: 1, second: 0, third: 0}
    assert list(added.tallies) == [first, second, third]  # by position

    assert (await click(BOB, first)).tallies == {first: 2, second: 0, third: 0}

    moved = await click(ALICE, third)
    assert (moved.action, moved.candidate_id) == ("moved", third)
    assert moved.tallies == {first: 1, second: 0, third: 1}
    assert (
        await get_member_vote(
            session, guild_id=GUILD_A, composition_id=composition.id, user_id=ALICE
        )
        == third
    )

    removed = await click(ALICE, third)
    assert (removed.action, removed.candidate_id) == ("removed", None)
    assert removed.tallies == {first: 1, second: 0, third: 0}
    assert (
        await get_member_vote(
            session, guild_id=GUILD_A, composition_id=composition.id, user_id=ALICE
        )
        is None
    )

    assert await get_tallies(session, guild_id=GUILD_A, composition_id=composition.id) == {
        first: 1,
        second: 0,
        third: 0,
    }


async def test_a_vote_must_name_a_candidate_of_that_composition(session: AsyncSession) -> None:
    composition = await make_composition(session)
    other = await make_composition(session)
    with pytest.raises(CandidateNotFound):
        await cast_vote(
            session,
            guild_id=GUILD_A,
            composition_id=composition.id,
            candidate_id=other.candidates[0].id,
            user_id=ALICE,
        )
    with pytest.raises(CompositionNotFound):
        await cast_vote(
            session,
            guild_id=GUILD_A,
            composition_id=10**6,
            candidate_id=other.candidates[0].id,
            user_id=ALICE,
        )
    with pytest.raises(CompositionNotFound):
        await get_tallies(session, guild_id=GUILD_A, composition_id=10**6)
    assert set(
        (await get_tallies(session, guild_id=GUILD_A, composition_id=composition.id)).values()
    ) == {0}


async def test_concurrent_toggles_end_consistent(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """100 clicks from 20 members, all at once, each in its own session."""
    async with sessions() as session:
        composition = await make_composition(session, candidates=4)
    candidates = [c.id for c in composition.candidates]
    rng = random.Random(7)
    members = [ALICE + i for i in range(20)]
    # Half the members click one candidate 5 times (so they end voting: odd clicks); the
    # others click at random, moving their vote about.
    clicks = [
        (member, candidates[i % 4] if i % 2 == 0 else rng.choice(candidates))
        for i, member in enumerate(members)
        for _ in range(5)
    ]
    rng.shuffle(clicks)

    async def click(member: int, candidate: int):  # type: ignore[no-untyped-def]
        async with sessions() as session:
            result = await cast_vote(
                session,
                guild_id=GUILD_A,
                composition_id=composition.id,
                candidate_id=candidate,
                user_id=member,
            )
            return member, result

    results = await asyncio.gather(*(click(m, c) for m, c in clicks))

    async with sessions() as session:
        tallies = await get_tallies(session, guild_id=GUILD_A, composition_id=composition.id)
        rows = (
            await session.execute(
                select(Vote.user_id, Vote.candidate_id).where(Vote.composition_id == composition.id)
            )
        ).all()
    final = dict(rows)
    assert len(final) == len(rows)  # at most one vote per member
    assert tallies == {c: Counter(final.values())[c] for c in candidates}
    assert sum(tallies.values()) == len(final)

    for i, member in enumerate(members):
        actions = Counter(r.action for m, r in results if m == member)
        # Every click saw the one before it: the adds and removes alternate.
        assert actions["added"] - actions["removed"] == (1 if member in final else 0)
        if i % 2 == 0:
            assert actions == {"added": 3, "removed": 2}
            assert final[member] == candidates[i % 4]
    # Each click's own tally was a real state: no more votes than members, never negative.
    assert all(0 <= sum(r.tallies.values()) <= len(members) for _, r in results)


async def test_top_candidates(session: AsyncSession) -> None:
    old = await make_composition(session)
    new = await make_composition(session)
    unvoted = await make_composition(session)
    plan = [
        (old, 0, [ALICE, BOB, CAROL]),
        (old, 1, [DAVE]),
        (new, 2, [ALICE, BOB]),
        (new, 0, [CAROL]),
    ]
    for composition, index, voters in plan:
        for voter in voters:
            await cast_vote(
                session,
                guild_id=GUILD_A,
                composition_id=composition.id,
                candidate_id=composition.candidates[index].id,
                user_id=voter,
            )

    top = await top_candidates(session, guild_id=GUILD_A)
    assert [(t.composition_id, t.position, t.votes) for t in top] == [
        (old.id, 1, 3),
        (new.id, 3, 2),
        (new.id, 1, 1),  # newer first among equals
        (old.id, 2, 1),
    ]
    assert all(t.composition_id != unvoted.id for t in top)
    assert top[0].candidate_id == old.candidates[0].id
    assert top[0].requester_id == ALICE
    assert len(await top_candidates(session, guild_id=GUILD_A, limit=2)) == 2
    assert await top_candidates(session, guild_id=GUILD_A, since=utcnow() + timedelta(1)) == []
    with pytest.raises(ValueError, match="received 0"):
        await top_candidates(session, guild_id=GUILD_A, limit=0)
