"""Jams in storage: one per channel, rounds closed exactly once (whichever caller is first),
votes counted only while their round is open, the winner rule, pause and resume."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import (
    Jam,
    JamStatus,
    add_jam_round,
    cast_jam_vote,
    claim_jam_writer,
    close_jam_round,
    create_jam,
    due_jam_rounds,
    end_jam,
    everyone_back,
    get_active_jam,
    get_jam,
    get_jam_rounds,
    get_tallies,
    jam_winners,
    pause_jam,
    resume_jam,
    set_jam_writer,
    stalled_jams,
    winner_of,
)
from bot.db.errors import JamAlreadyRunning, JamRoundClosed, NoJam

from .helpers import ALICE, BOB, CHANNEL, GUILD_A, GUILD_B, ON_SESSION_LOOP, make_composition

pytestmark = ON_SESSION_LOOP

T0 = datetime.fromisoformat("2026-01-01T20:00:00+00:00")
LEASE = timedelta(seconds=60)


async def start(session: AsyncSession, *, rounds: int = 2, channel: int = CHANNEL) -> Jam:
    return await create_jam(
        session,
        guild_id=GUILD_A,
        channel_id=channel,
        starter_id=ALICE,
        rounds=rounds,
        round_seconds=120,
        params={"bars": 4, "candidates": 3},
        seed_id=None,
        seed_midi=None,
        now=T0,
        writer_until=T0 + LEASE,
    )


async def open_round(session: AsyncSession, jam: Jam, number: int, now: datetime = T0):  # type: ignore[no-untyped-def]
    composition = await make_composition(session, candidates=3)
    row = await add_jam_round(
        session,
        guild_id=GUILD_A,
        jam_id=jam.id,
        number=number,
        composition_id=composition.id,
        now=now,
    )
    assert row is not None
    return row, [c.id for c in composition.candidates]


async def vote(session: AsyncSession, round_id: int, candidate: int, user: int):  # type: ignore[no-untyped-def]
    return await cast_jam_vote(
        session, guild_id=GUILD_A, round_id=round_id, candidate_id=candidate, user_id=user
    )


async def stop(session: AsyncSession, jam: Jam):  # type: ignore[no-untyped-def]
    return await end_jam(session, guild_id=GUILD_A, jam_id=jam.id, status=JamStatus.STOPPED, now=T0)


async def close(session: AsyncSession, round_id: int, now: datetime = T0):  # type: ignore[no-untyped-def]
    return await close_jam_round(
        session, guild_id=GUILD_A, round_id=round_id, now=now, writer_until=now + LEASE
    )


@pytest.mark.parametrize(
    ("votes", "winner"),
    [([0, 0, 0], 1), ([0, 2, 1], 2), ([1, 2, 2], 2), ([3, 3, 0], 1), ([0, 0, 1], 3)],
)
async def test_the_most_votes_win_and_the_lowest_position_among_equals(
    votes: list[int], winner: int
) -> None:
    tallies = {100 + i: v for i, v in enumerate(votes)}
    assert winner_of(tallies) == (100 + winner - 1, winner)


async def test_one_jam_per_channel(session: AsyncSession) -> None:
    jam = await start(session)
    with pytest.raises(JamAlreadyRunning):
        await start(session)
    other = await start(session, channel=CHANNEL + 1)  # another channel may have its own
    assert other.id != jam.id
    assert await stop(session, jam)
    with pytest.raises(NoJam):
        await get_active_jam(session, guild_id=GUILD_A, channel_id=CHANNEL)
    assert (await start(session)).id != jam.id  # the channel is free again


async def test_a_round_closes_once_and_counts_every_vote_before_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        jam = await start(session)
        row, candidates = await open_round(session, jam, 1)
        await vote(session, row.id, candidates[1], ALICE)
        await vote(session, row.id, candidates[1], BOB)
        assert await due_jam_rounds(session, now=T0 + timedelta(seconds=119)) == []
        assert await due_jam_rounds(session, now=T0 + timedelta(seconds=120)) == [(GUILD_A, row.id)]

    async def closer():  # type: ignore[no-untyped-def]
        async with sessions() as own:  # each caller its own connection, as two processes
            return await close(own, row.id, T0 + timedelta(seconds=120))

    results = await asyncio.gather(*(closer() for _ in range(4)))
    won = [r for r in results if r is not None]
    assert len(won) == 1
    assert (won[0].winner_candidate_id, won[0].winner_position, won[0].winner_votes) == (
        candidates[1],
        2,
        2,
    )
    async with sessions() as session:
        with pytest.raises(JamRoundClosed, match="Round 1's vote has closed"):
            await vote(session, row.id, candidates[0], BOB + 1)
        (stored,) = await get_jam_rounds(session, guild_id=GUILD_A, jam_id=jam.id)
        assert stored.status == "closed" and stored.winner_votes == 2
        assert await due_jam_rounds(session, now=T0 + timedelta(hours=1)) == []
        [(_, winner)] = await jam_winners(session, guild_id=GUILD_A, jam_id=jam.id)
        assert winner.id == candidates[1] and winner.midi


async def test_votes_racing_the_close_are_counted_or_refused(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as session:
        jam = await start(session)
        row, candidates = await open_round(session, jam, 1)
    voters = [ALICE + i for i in range(1, 9)]

    async def voter(user: int) -> bool:
        async with sessions() as own:
            try:
                await vote(own, row.id, candidates[2], user)
            except JamRoundClosed:
                return False
            return True

    async def closer():  # type: ignore[no-untyped-def]
        async with sessions() as own:
            return await close(own, row.id)

    *counted, closed = await asyncio.gather(*(voter(u) for u in voters), closer())
    # Whatever the order, the close saw exactly the votes that were accepted.
    assert closed is not None
    assert closed.tallies[candidates[2]] == sum(counted)
    assert closed.winner_position == (3 if any(counted) else 1)


async def test_early_close_when_everyone_of_the_last_round_is_back(session: AsyncSession) -> None:
    jam = await start(session)
    first, c1 = await open_round(session, jam, 1)
    assert not await everyone_back(session, guild_id=GUILD_A, round_id=first.id)
    await vote(session, first.id, c1[0], ALICE)
    await vote(session, first.id, c1[0], BOB)
    assert await close(session, first.id) is not None
    second, c2 = await open_round(session, jam, 2)
    await vote(session, second.id, c2[2], ALICE)
    assert not await everyone_back(session, guild_id=GUILD_A, round_id=second.id)
    await vote(session, second.id, c2[1], BOB)
    assert await everyone_back(session, guild_id=GUILD_A, round_id=second.id)


async def test_pause_keeps_the_time_left_and_resume_gives_it_back(session: AsyncSession) -> None:
    jam = await start(session)
    row, _ = await open_round(session, jam, 1)
    at = T0 + timedelta(seconds=90)
    assert await pause_jam(session, guild_id=GUILD_A, jam_id=jam.id, now=at)
    assert not await pause_jam(session, guild_id=GUILD_A, jam_id=jam.id, now=at)
    # Paused: not due, however late.
    assert await due_jam_rounds(session, now=at + timedelta(hours=2)) == []
    later = at + timedelta(hours=1)
    resumed = await resume_jam(session, guild_id=GUILD_A, jam_id=jam.id, now=later)
    assert resumed is not None and resumed.deadline == later + timedelta(seconds=30)
    assert await resume_jam(session, guild_id=GUILD_A, jam_id=jam.id, now=later) is None
    assert await due_jam_rounds(session, now=later + timedelta(seconds=30)) == [(GUILD_A, row.id)]


async def test_a_stalled_jam_is_claimed_by_one_writer(session: AsyncSession) -> None:
    jam = await start(session)  # its starter holds the lease until T0 + LEASE
    assert await stalled_jams(session, now=T0) == []
    late = T0 + LEASE + timedelta(seconds=1)  # the starter's process is gone
    assert await stalled_jams(session, now=late) == [(GUILD_A, jam.id)]
    until = late + LEASE
    assert await claim_jam_writer(session, guild_id=GUILD_A, jam_id=jam.id, now=late, until=until)
    assert not await claim_jam_writer(
        session, guild_id=GUILD_A, jam_id=jam.id, now=late, until=until
    )
    await open_round(session, jam, 1, late)
    # Another writer's copy of round 1 is refused: its composition is not needed.
    composition = await make_composition(session)
    assert (
        await add_jam_round(
            session,
            guild_id=GUILD_A,
            jam_id=jam.id,
            number=1,
            composition_id=composition.id,
            now=late,
        )
        is None
    )
    assert await stalled_jams(session, now=late + timedelta(days=1)) == []


async def test_stop_closes_the_open_round_without_a_winner(session: AsyncSession) -> None:
    jam = await start(session)
    row, candidates = await open_round(session, jam, 1)
    await vote(session, row.id, candidates[0], BOB)
    ended = await stop(session, jam)
    assert ended is not None and ended.status == "stopped"
    assert await stop(session, jam) is None
    assert await close(session, row.id) is None
    assert await jam_winners(session, guild_id=GUILD_A, jam_id=jam.id) == []


async def jam_state(session: AsyncSession, jam: Jam) -> tuple:
    """Everything a foreign call could change of a jam: its row, its rounds and their votes."""
    async with session.begin():
        row = await session.get(Jam, jam.id, populate_existing=True)
        assert row is not None
        state = (row.status, row.writer_until, row.paused_remaining, row.finished_at)
    rounds = await get_jam_rounds(session, guild_id=GUILD_A, jam_id=jam.id)
    tallies = [
        await get_tallies(session, guild_id=GUILD_A, composition_id=r.composition_id)
        for r in rounds
    ]
    return state, [(r.number, r.status, r.deadline, r.winner_candidate_id) for r in rounds], tallies


async def test_another_server_cannot_reach_a_jam(session: AsyncSession) -> None:
    # Every guild-scoped jam query, called by server B with server A's ids, finds nothing and
    # changes nothing (tests/db/test_isolation.py counts on this test for them).
    jam = await start(session)
    first, candidates = await open_round(session, jam, 1)
    await vote(session, first.id, candidates[0], ALICE)
    composition = await make_composition(session, candidates=3)
    before = await jam_state(session, jam)
    later = T0 + timedelta(hours=1)

    with pytest.raises(NoJam):
        await get_active_jam(session, guild_id=GUILD_B, channel_id=CHANNEL)
    with pytest.raises(NoJam):
        await get_jam(session, guild_id=GUILD_B, jam_id=jam.id)
    with pytest.raises(NoJam):
        await cast_jam_vote(
            session, guild_id=GUILD_B, round_id=first.id, candidate_id=candidates[1], user_id=BOB
        )
    assert await get_jam_rounds(session, guild_id=GUILD_B, jam_id=jam.id) == []
    assert await jam_winners(session, guild_id=GUILD_B, jam_id=jam.id) == []
    assert not await everyone_back(session, guild_id=GUILD_B, round_id=first.id)
    assert (
        await add_jam_round(
            session,
            guild_id=GUILD_B,
            jam_id=jam.id,
            number=2,
            composition_id=composition.id,
            now=later,
        )
        is None
    )
    assert (
        await close_jam_round(
            session, guild_id=GUILD_B, round_id=first.id, now=later, writer_until=later + LEASE
        )
        is None
    )
    assert (
        await claim_jam_writer(
            session, guild_id=GUILD_B, jam_id=jam.id, now=later, until=later + LEASE
        )
        is None
    )
    await set_jam_writer(session, guild_id=GUILD_B, jam_id=jam.id, until=None)
    assert not await pause_jam(session, guild_id=GUILD_B, jam_id=jam.id, now=later)
    assert await resume_jam(session, guild_id=GUILD_B, jam_id=jam.id, now=later) is None
    assert (
        await end_jam(session, guild_id=GUILD_B, jam_id=jam.id, status=JamStatus.STOPPED, now=later)
        is None
    )

    assert await jam_state(session, jam) == before
    assert (await get_jam(session, guild_id=GUILD_A, jam_id=jam.id)).status == "running"
