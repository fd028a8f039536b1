"""Votes: one per member per composition, toggled by clicking, and what they add up to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.errors import CandidateNotFound, CompositionNotFound
from bot.db.models import Candidate, Composition, Vote
from bot.db.queries._tx import check_id, check_snowflake, reading, writing
from bot.db.types import utcnow

VoteAction = Literal["added", "moved", "removed"]


@dataclass(frozen=True, slots=True)
class VoteResult:
    action: VoteAction
    # The member's vote after the click: None when the click took it back.
    candidate_id: int | None
    # Candidate id -> votes for every candidate of the composition, by position; read in the
    # same transaction as the change, so it includes this vote and every earlier one.
    tallies: dict[int, int]


@dataclass(frozen=True, slots=True)
class TopCandidate:
    candidate_id: int
    composition_id: int
    position: int
    votes: int
    channel_id: int
    message_id: int | None
    requester_id: int
    created_at: datetime


def vote_of_candidate() -> ColumnElement[bool]:
    """Join condition of a candidate's votes (matching the composite foreign key)."""
    return and_(Vote.composition_id == Candidate.composition_id, Vote.candidate_id == Candidate.id)


async def cast_vote(
    session: AsyncSession,
    *,
    guild_id: int,
    composition_id: int,
    candidate_id: int,
    user_id: int,
) -> VoteResult:
    """A member clicks a candidate's vote button.

    No vote yet: the vote is added. A vote for this candidate: it is removed. A vote for
    another candidate: it moves here. Atomic under concurrent clicks: SQLite serializes
    writers (BEGIN IMMEDIATE); PostgreSQL serializes the votes of one composition on its row
    lock, so the read of the member's vote and the write that follows cannot interleave with
    another vote on the same composition.
    """
    check_snowflake("guild_id", guild_id)
    check_id("composition_id", composition_id)
    check_id("candidate_id", candidate_id)
    check_snowflake("user_id", user_id)
    async with writing(session):
        return await vote_in_transaction(
            session,
            guild_id=guild_id,
            composition_id=composition_id,
            candidate_id=candidate_id,
            user_id=user_id,
        )


async def vote_in_transaction(
    session: AsyncSession, *, guild_id: int, composition_id: int, candidate_id: int, user_id: int
) -> VoteResult:
    """cast_vote's work inside the caller's write transaction (a jam checks its round is still
    open in the same transaction)."""
    locked = await session.scalar(
        select(Composition.id)
        .where(Composition.id == composition_id, Composition.guild_id == guild_id)
        # NO KEY UPDATE: the lock does not block inserts that merely reference the row.
        .with_for_update(key_share=True)
    )
    if locked is None:
        raise CompositionNotFound(composition_id)
    if not await session.scalar(
        select(Candidate.id).where(
            Candidate.id == candidate_id, Candidate.composition_id == composition_id
        )
    ):
        raise CandidateNotFound(candidate_id)
    return await _toggle_vote(session, composition_id, candidate_id, user_id)


async def _toggle_vote(
    session: AsyncSession, composition_id: int, candidate_id: int, user_id: int
) -> VoteResult:
    """The click itself, once the composition is locked and the candidate checked."""
    member_vote = and_(Vote.composition_id == composition_id, Vote.user_id == user_id)
    current = await session.scalar(select(Vote.candidate_id).where(member_vote))
    action: VoteAction
    if current is None:
        now = utcnow()
        await session.execute(
            insert(Vote).values(
                composition_id=composition_id,
                user_id=user_id,
                candidate_id=candidate_id,
                created_at=now,
                updated_at=now,
            )
        )
        action, now_voting = "added", candidate_id
    elif current == candidate_id:
        await session.execute(delete(Vote).where(member_vote))
        action, now_voting = "removed", None
    else:
        await session.execute(
            update(Vote).where(member_vote).values(candidate_id=candidate_id, updated_at=utcnow())
        )
        action, now_voting = "moved", candidate_id
    tallies = await _tallies(session, composition_id)
    return VoteResult(action=action, candidate_id=now_voting, tallies=tallies)


async def get_tallies(
    session: AsyncSession, *, guild_id: int, composition_id: int
) -> dict[int, int]:
    """Candidate id -> votes for every candidate of the composition, by position."""
    check_snowflake("guild_id", guild_id)
    check_id("composition_id", composition_id)
    async with reading(session):
        if not await session.scalar(
            select(Composition.id).where(
                Composition.id == composition_id, Composition.guild_id == guild_id
            )
        ):
            raise CompositionNotFound(composition_id)
        return await _tallies(session, composition_id)


async def _tallies(session: AsyncSession, composition_id: int) -> dict[int, int]:
    rows = await session.execute(
        select(Candidate.id, func.count(Vote.user_id))
        .outerjoin(Vote, vote_of_candidate())
        .where(Candidate.composition_id == composition_id)
        .group_by(Candidate.id, Candidate.position)
        .order_by(Candidate.position)
    )
    return {candidate_id: votes for candidate_id, votes in rows}


async def get_member_vote(
    session: AsyncSession, *, guild_id: int, composition_id: int, user_id: int
) -> int | None:
    """The candidate the member votes for in this composition, if any."""
    check_snowflake("guild_id", guild_id)
    check_id("composition_id", composition_id)
    check_snowflake("user_id", user_id)
    async with reading(session):
        return await session.scalar(
            select(Vote.candidate_id)
            .join(Composition, Composition.id == Vote.composition_id)
            .where(
                Vote.composition_id == composition_id,
                Vote.user_id == user_id,
                Composition.guild_id == guild_id,
            )
        )


async def top_candidates(
    session: AsyncSession, *, guild_id: int, limit: int = 10, since: datetime | None = None
) -> list[TopCandidate]:
    """The server's most voted candidates (at least one vote), newest first among equals.

    `since` keeps compositions created at or after that moment (a weekly /top, say).
    """
    check_snowflake("guild_id", guild_id)
    if not 1 <= limit <= 100:
        raise ValueError(f"limit must be within 1 and 100 (received {limit})")
    votes = func.count(Vote.user_id).label("votes")
    query = (
        select(
            Candidate.id,
            Candidate.composition_id,
            Candidate.position,
            votes,
            Composition.channel_id,
            Composition.message_id,
            Composition.requester_id,
            Composition.created_at,
        )
        .join(Composition, Composition.id == Candidate.composition_id)
        .join(Vote, vote_of_candidate())
        .where(Composition.guild_id == guild_id)
        .group_by(Candidate.id, Composition.id)
        .order_by(votes.desc(), Composition.created_at.desc(), Candidate.position)
        .limit(limit)
    )
    if since is not None:
        query = query.where(Composition.created_at >= since)
    async with reading(session):
        rows = (await session.execute(query)).all()
    return [
        TopCandidate(
            candidate_id=row[0],
            composition_id=row[1],
            position=row[2],
            votes=row[3],
            channel_id=row[4],
            message_id=row[5],
            requester_id=row[6],
            created_at=row[7],
        )
        for row in rows
    ]
