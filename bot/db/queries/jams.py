"""Jams: their rounds, their votes and every change of state, each a claim that only one
caller (of any bot process) can win.

A round is closed by `UPDATE jam_round SET status='closed' WHERE id=? AND status='open'`:
whoever changes the row is the one that posts the result and writes the next round; every
other caller gets None. A vote checks, in its own write transaction, that its round is still
open, so a vote either counts in the close or is refused: none is lost in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.errors import JamAlreadyRunning, JamRoundClosed, NoJam
from bot.db.models import (
    ACTIVE_JAM_STATUSES,
    Candidate,
    Jam,
    JamRound,
    JamRoundStatus,
    JamStatus,
    Vote,
)
from bot.db.queries._tx import check_id, check_snowflake, ensure_guild, reading, writing
from bot.db.queries.votes import VoteResult, _tallies, vote_in_transaction

_ACTIVE = [s.value for s in ACTIVE_JAM_STATUSES]
_OPEN = JamRoundStatus.OPEN.value


@dataclass(frozen=True, slots=True)
class ClosedRound:
    """What closing a round decided: the winner by the rule of `winner_of`."""

    jam: Jam
    round: JamRound
    winner_candidate_id: int
    winner_position: int
    winner_votes: int
    tallies: dict[int, int]  # candidate id -> votes, by position


def winner_of(tallies: Mapping[int, int]) -> tuple[int, int]:
    """(candidate id, its position): the most votes wins; among equals (and when nobody
    voted) the lowest position, so candidate 1. `tallies` are in position order."""
    if not tallies:
        raise ValueError("a round has at least one candidate (received none)")
    best = max(enumerate(tallies.items(), start=1), key=lambda p: (p[1][1], -p[0]))
    return best[1][0], best[0]


async def create_jam(
    session: AsyncSession,
    *,
    guild_id: int,
    channel_id: int,
    starter_id: int,
    rounds: int,
    round_seconds: int,
    params: Mapping[str, Any],
    seed_id: int | None,
    seed_midi: bytes | None,
    now: datetime,
    writer_until: datetime,
) -> Jam:
    """A running jam whose first round the caller writes (it holds the writer's lease until
    `writer_until`). JamAlreadyRunning when the channel has one."""
    check_snowflake("guild_id", guild_id)
    check_snowflake("channel_id", channel_id)
    check_snowflake("starter_id", starter_id)
    jam = Jam(
        guild_id=guild_id,
        channel_id=channel_id,
        starter_id=starter_id,
        status=JamStatus.RUNNING.value,
        rounds=rounds,
        round_seconds=round_seconds,
        params=dict(params),
        seed_id=seed_id,
        seed_midi=seed_midi,
        writer_until=writer_until,
        created_at=now,
    )
    try:
        async with writing(session):
            await ensure_guild(session, guild_id)
            if await _active_jam(session, channel_id) is not None:
                raise JamAlreadyRunning()
            session.add(jam)
    except IntegrityError:
        raise JamAlreadyRunning() from None  # a concurrent start won (the unique index held)
    return jam


async def _active_jam(session: AsyncSession, channel_id: int) -> Jam | None:
    return (
        await session.scalars(
            select(Jam).where(Jam.channel_id == channel_id, Jam.status.in_(_ACTIVE))
        )
    ).one_or_none()


async def get_active_jam(session: AsyncSession, *, guild_id: int, channel_id: int) -> Jam:
    """The channel's running or paused jam; NoJam if there is none."""
    check_snowflake("guild_id", guild_id)
    check_snowflake("channel_id", channel_id)
    async with reading(session):
        jam = await _active_jam(session, channel_id)
    if jam is None or jam.guild_id != guild_id:
        raise NoJam()
    return jam


async def get_jam(session: AsyncSession, *, guild_id: int, jam_id: int) -> Jam:
    check_snowflake("guild_id", guild_id)
    check_id("jam_id", jam_id)
    async with reading(session):
        jam = (
            await session.scalars(select(Jam).where(Jam.id == jam_id, Jam.guild_id == guild_id))
        ).one_or_none()
    if jam is None:
        raise NoJam()
    return jam


async def get_jam_rounds(session: AsyncSession, *, guild_id: int, jam_id: int) -> list[JamRound]:
    """The jam's rounds so far, in order."""
    check_snowflake("guild_id", guild_id)
    check_id("jam_id", jam_id)
    async with reading(session):
        return list(
            await session.scalars(
                select(JamRound)
                .join(Jam, Jam.id == JamRound.jam_id)
                .where(JamRound.jam_id == jam_id, Jam.guild_id == guild_id)
                .order_by(JamRound.number)
            )
        )


async def add_jam_round(
    session: AsyncSession,
    *,
    guild_id: int,
    jam_id: int,
    number: int,
    composition_id: int,
    now: datetime,
) -> JamRound | None:
    """Open round `number` with its vote running from `now` (or its clock stopped, if the jam
    was paused meanwhile), and release the writer's lease. None when the jam ended meanwhile
    or another process already opened this round: the caller's composition is not needed."""
    check_snowflake("guild_id", guild_id)
    check_id("jam_id", jam_id)
    check_id("composition_id", composition_id)
    try:
        async with writing(session):
            jam = await _lock_jam(session, guild_id, jam_id)
            if jam is None or jam.status not in _ACTIVE:
                return None
            paused = jam.status == JamStatus.PAUSED
            row = JamRound(
                jam_id=jam_id,
                number=number,
                composition_id=composition_id,
                status=_OPEN,
                deadline=None if paused else now + timedelta(seconds=jam.round_seconds),
            )
            session.add(row)
            await session.execute(
                update(Jam)
                .where(Jam.id == jam_id)
                .values(
                    writer_until=None,
                    paused_remaining=float(jam.round_seconds) if paused else None,
                )
            )
    except IntegrityError:
        return None  # round `number` is already open (another process wrote it too)
    return row


async def _lock_jam(session: AsyncSession, guild_id: int, jam_id: int) -> Jam | None:
    return (
        await session.scalars(
            select(Jam).where(Jam.id == jam_id, Jam.guild_id == guild_id).with_for_update()
        )
    ).one_or_none()


async def cast_jam_vote(
    session: AsyncSession,
    *,
    guild_id: int,
    round_id: int,
    candidate_id: int,
    user_id: int,
) -> tuple[JamRound, VoteResult]:
    """A member's click on a round's vote button, counted only while the round is open
    (JamRoundClosed otherwise); the vote is a /compose vote of the round's composition."""
    check_snowflake("guild_id", guild_id)
    check_id("round_id", round_id)
    async with writing(session):
        row = (
            await session.scalars(
                select(JamRound)
                .join(Jam, Jam.id == JamRound.jam_id)
                .where(JamRound.id == round_id, Jam.guild_id == guild_id)
                # The close's UPDATE waits for this lock (PostgreSQL), so the vote is in it.
                .with_for_update(of=JamRound)
            )
        ).one_or_none()
        if row is None:
            raise NoJam()
        if row.status != _OPEN:
            raise JamRoundClosed(row.number)
        result = await vote_in_transaction(
            session,
            guild_id=guild_id,
            composition_id=row.composition_id,
            candidate_id=candidate_id,
            user_id=user_id,
        )
    return row, result


async def everyone_back(session: AsyncSession, *, guild_id: int, round_id: int) -> bool:
    """Whether every member who voted in the round before this one has voted in this one
    (False for a first round, or when nobody voted before): the vote may close early."""
    check_snowflake("guild_id", guild_id)
    check_id("round_id", round_id)
    async with reading(session):
        row = (
            await session.scalars(
                select(JamRound)
                .join(Jam, Jam.id == JamRound.jam_id)
                .where(JamRound.id == round_id, Jam.guild_id == guild_id)
            )
        ).one_or_none()
        if row is None or row.number == 1:
            return False
        previous = await session.scalar(
            select(JamRound.composition_id).where(
                JamRound.jam_id == row.jam_id, JamRound.number == row.number - 1
            )
        )
        before = set(
            await session.scalars(select(Vote.user_id).where(Vote.composition_id == previous))
        )
        now = set(
            await session.scalars(
                select(Vote.user_id).where(Vote.composition_id == row.composition_id)
            )
        )
    return bool(before) and before <= now


async def close_jam_round(
    session: AsyncSession, *, guild_id: int, round_id: int, now: datetime, writer_until: datetime
) -> ClosedRound | None:
    """Close an open round and record its winner (winner_of), and give the caller the lease
    to write what follows (until `writer_until`). None if the round was already closed: only
    one caller, in any process, ever gets the result."""
    check_snowflake("guild_id", guild_id)
    check_id("round_id", round_id)
    async with writing(session):
        jam = (
            await session.scalars(
                select(Jam)
                .join(JamRound, JamRound.jam_id == Jam.id)
                .where(JamRound.id == round_id, Jam.guild_id == guild_id)
            )
        ).one_or_none()
        if jam is None:
            return None
        claimed = await session.execute(
            update(JamRound)
            .where(JamRound.id == round_id, JamRound.status == _OPEN)
            .values(status=JamRoundStatus.CLOSED.value, closed_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        row = (await session.scalars(select(JamRound).where(JamRound.id == round_id))).one()
        tallies = await _tallies(session, row.composition_id)
        winner, position = winner_of(tallies)
        await session.execute(
            update(JamRound)
            .where(JamRound.id == round_id)
            .values(winner_candidate_id=winner, winner_votes=tallies[winner])
        )
        await session.execute(update(Jam).where(Jam.id == jam.id).values(writer_until=writer_until))
        await session.refresh(row)
        await session.refresh(jam)
    return ClosedRound(jam, row, winner, position, tallies[winner], tallies)


async def due_jam_rounds(session: AsyncSession, *, now: datetime) -> list[tuple[int, int]]:
    """(guild id, round id) of every open round of a running jam whose vote is over, in any
    server: the deadline checker closes them."""
    async with reading(session):
        rows = await session.execute(
            select(Jam.guild_id, JamRound.id)
            .join(Jam, Jam.id == JamRound.jam_id)
            .where(
                JamRound.status == _OPEN,
                JamRound.deadline <= now,
                Jam.status == JamStatus.RUNNING.value,
            )
            .order_by(JamRound.deadline)
        )
        return [(guild_id, round_id) for guild_id, round_id in rows]


def _no_open_round() -> Any:
    return ~exists().where(JamRound.jam_id == Jam.id, JamRound.status == _OPEN)


async def stalled_jams(session: AsyncSession, *, now: datetime) -> list[tuple[int, int]]:
    """(guild id, jam id) of running jams with no open round and nobody writing the next
    (the writer's lease is over: its process is gone, or it let go to try again later)."""
    async with reading(session):
        rows = await session.execute(
            select(Jam.guild_id, Jam.id).where(
                Jam.status == JamStatus.RUNNING.value,
                _no_open_round(),
                (Jam.writer_until.is_(None)) | (Jam.writer_until < now),
            )
        )
        return [(guild_id, jam_id) for guild_id, jam_id in rows]


async def claim_jam_writer(
    session: AsyncSession, *, guild_id: int, jam_id: int, now: datetime, until: datetime
) -> Jam | None:
    """Become the writer of a running jam's next round (or of its end) until `until`; None if
    another holds the lease, a round is open, or the jam is not running."""
    check_snowflake("guild_id", guild_id)
    check_id("jam_id", jam_id)
    async with writing(session):
        claimed = await session.execute(
            update(Jam)
            .where(
                Jam.id == jam_id,
                Jam.guild_id == guild_id,
                Jam.status == JamStatus.RUNNING.value,
                _no_open_round(),
                (Jam.writer_until.is_(None)) | (Jam.writer_until < now),
            )
            .values(writer_until=until)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return (await session.scalars(select(Jam).where(Jam.id == jam_id))).one()


async def set_jam_writer(
    session: AsyncSession, *, guild_id: int, jam_id: int, until: datetime | None
) -> None:
    """Move (or, with None, drop) the writer's lease: a writer that must wait lets go."""
    check_snowflake("guild_id", guild_id)
    check_id("jam_id", jam_id)
    async with writing(session):
        await session.execute(
            update(Jam).where(Jam.id == jam_id, Jam.guild_id == guild_id).values(writer_until=until)
        )


async def pause_jam(session: AsyncSession, *, guild_id: int, jam_id: int, now: datetime) -> bool:
    """Stop the open round's clock (keeping the seconds it had left). False if the jam was
    not running."""
    check_snowflake("guild_id", guild_id)
    check_id("jam_id", jam_id)
    async with writing(session):
        jam = await _lock_jam(session, guild_id, jam_id)
        if jam is None or jam.status != JamStatus.RUNNING:
            return False
        open_round = await _open_round(session, jam_id)
        remaining = None
        if open_round is not None and open_round.deadline is not None:
            remaining = max(0.0, (open_round.deadline - now).total_seconds())
            open_round.deadline = None
        jam.status = JamStatus.PAUSED.value
        jam.paused_remaining = remaining
    return True


@dataclass(frozen=True, slots=True)
class Resumed:
    # The open round's new deadline; None when no round is open (the checker writes the next).
    deadline: datetime | None


async def resume_jam(
    session: AsyncSession, *, guild_id: int, jam_id: int, now: datetime
) -> Resumed | None:
    """Run the clock again, with the seconds the open round had left; None if the jam was
    not paused."""
    check_snowflake("guild_id", guild_id)
    check_id("jam_id", jam_id)
    async with writing(session):
        jam = await _lock_jam(session, guild_id, jam_id)
        if jam is None or jam.status != JamStatus.PAUSED:
            return None
        open_round = await _open_round(session, jam_id)
        deadline = None
        if open_round is not None:
            remaining = jam.paused_remaining
            seconds = remaining if remaining is not None else float(jam.round_seconds)
            deadline = now + timedelta(seconds=seconds)
            open_round.deadline = deadline
        jam.status = JamStatus.RUNNING.value
        jam.paused_remaining = None
        jam.writer_until = None
    return Resumed(deadline)


async def _open_round(session: AsyncSession, jam_id: int) -> JamRound | None:
    return (
        await session.scalars(
            select(JamRound).where(JamRound.jam_id == jam_id, JamRound.status == _OPEN)
        )
    ).one_or_none()


async def end_jam(
    session: AsyncSession, *, guild_id: int, jam_id: int, status: JamStatus, now: datetime
) -> Jam | None:
    """Finish or stop a running or paused jam (its open round, if any, closes without a
    winner); None if it had already ended (only one caller posts the end)."""
    check_snowflake("guild_id", guild_id)
    check_id("jam_id", jam_id)
    if status not in (JamStatus.FINISHED, JamStatus.STOPPED):
        raise ValueError(f"a jam ends finished or stopped (received {status})")
    async with writing(session):
        ended = await session.execute(
            update(Jam)
            .where(Jam.id == jam_id, Jam.guild_id == guild_id, Jam.status.in_(_ACTIVE))
            .values(status=status.value, finished_at=now, writer_until=None)
        )
        if ended.rowcount != 1:  # type: ignore[attr-defined]
            return None
        await session.execute(
            update(JamRound)
            .where(JamRound.jam_id == jam_id, JamRound.status == _OPEN)
            .values(status=JamRoundStatus.CLOSED.value, closed_at=now)
        )
        return (await session.scalars(select(Jam).where(Jam.id == jam_id))).one()


async def jam_winners(
    session: AsyncSession, *, guild_id: int, jam_id: int
) -> list[tuple[JamRound, Candidate]]:
    """The closed rounds with a winner, in order, each with its winning candidate (and MIDI)."""
    check_snowflake("guild_id", guild_id)
    check_id("jam_id", jam_id)
    async with reading(session):
        rows = await session.execute(
            select(JamRound, Candidate)
            .join(Jam, Jam.id == JamRound.jam_id)
            .join(Candidate, Candidate.id == JamRound.winner_candidate_id)
            .where(JamRound.jam_id == jam_id, Jam.guild_id == guild_id)
            .order_by(JamRound.number)
        )
        return [(row, candidate) for row, candidate in rows]
