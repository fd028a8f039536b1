"""Compositions and their candidates: record, post, fetch, and the chain of a piece."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, defer, selectinload
from sqlalchemy.orm.interfaces import LoaderOption

from bot.db.errors import (
    CandidateNotFound,
    CompositionNotFound,
    ModelVersionNotFound,
    SeedNotFound,
)
from bot.db.models import Candidate, Composition, ModelVersion, Seed
from bot.db.queries._tx import check_id, check_snowflake, ensure_guild, reading, writing

# Discord allows 5 rows of 5 buttons; no composition can show more candidates than that.
MAX_CANDIDATES = 25
# A piece longer than this is surely a bug (or a cycle); the walk stops there.
MAX_PIECE_ROUNDS = 1000


def _load_candidates(*, with_midi: bool) -> LoaderOption:
    """Load a composition's candidates; without MIDI, touching candidate.midi raises."""
    load = selectinload(Composition.candidates)
    return load if with_midi else load.options(defer(Candidate.midi, raiseload=True))


class CandidateFacts(Protocol):
    """What is stored of a candidate: the engine's CandidateResult is one, as it came."""

    @property
    def midi(self) -> bytes: ...
    @property
    def seconds(self) -> float: ...
    @property
    def notes(self) -> int: ...


@dataclass(frozen=True, slots=True)
class NewCandidate:
    """A candidate made without the engine (tests, imports), before it has an id."""

    midi: bytes
    seconds: float
    notes: int


def _check_candidate(candidate: CandidateFacts) -> None:
    if not candidate.midi:
        raise ValueError("a candidate needs MIDI bytes (received none)")
    if not (math.isfinite(candidate.seconds) and candidate.seconds >= 0):
        raise ValueError(f"seconds must be finite and >= 0 (received {candidate.seconds})")
    if candidate.notes < 0:
        raise ValueError(f"notes must be >= 0 (received {candidate.notes})")


@dataclass(frozen=True, slots=True)
class PieceRound:
    """One round of a piece: its composition and, except for the last round, the candidate
    that the next round continued."""

    composition: Composition
    continued: Candidate | None


async def record_composition(
    session: AsyncSession,
    *,
    guild_id: int,
    channel_id: int,
    requester_id: int,
    candidates: Sequence[CandidateFacts],
    params: Mapping[str, Any] | None = None,
    seed_id: int | None = None,
    seed_midi: bytes | None = None,
    parent_candidate_id: int | None = None,
    model_version_id: int | None = None,
) -> Composition:
    """Store a composition and its candidates (positions 1..n in the given order).

    `params` is whatever produced it (bars, temperature, ...) and must be JSON. The seed,
    the parent candidate and the model version must belong to this server; otherwise
    SeedNotFound, CandidateNotFound or ModelVersionNotFound. Returns the composition with
    its candidates (and their MIDI) loaded; its message id is set later by
    set_composition_message, once the bot has posted it.
    """
    check_snowflake("guild_id", guild_id)
    check_snowflake("channel_id", channel_id)
    check_snowflake("requester_id", requester_id)
    if not 1 <= len(candidates) <= MAX_CANDIDATES:
        raise ValueError(
            f"a composition has 1 to {MAX_CANDIDATES} candidates (received {len(candidates)})"
        )
    for candidate in candidates:
        _check_candidate(candidate)
    params = dict(params or {})
    try:
        # Fail here with the offending value rather than deep inside the driver.
        json.dumps(params, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"params must be plain JSON ({exc}; received {params!r})") from None

    composition = Composition(
        guild_id=guild_id,
        channel_id=channel_id,
        requester_id=requester_id,
        params=params,
        seed_id=seed_id,
        seed_midi=seed_midi,
        parent_candidate_id=parent_candidate_id,
        model_version_id=model_version_id,
        candidates=[
            Candidate(position=i, midi=c.midi, seconds=c.seconds, notes=c.notes)
            for i, c in enumerate(candidates, start=1)
        ],
    )
    async with writing(session):
        await ensure_guild(session, guild_id)
        await _check_references(session, guild_id, seed_id, parent_candidate_id, model_version_id)
        session.add(composition)
    return composition


async def _check_references(
    session: AsyncSession,
    guild_id: int,
    seed_id: int | None,
    parent_candidate_id: int | None,
    model_version_id: int | None,
) -> None:
    # Foreign keys only say the row exists; these say it is this server's.
    if seed_id is not None and not await session.scalar(
        select(Seed.id).where(Seed.id == seed_id, Seed.guild_id == guild_id)
    ):
        raise SeedNotFound(seed_id)
    if parent_candidate_id is not None and not await session.scalar(
        select(Candidate.id)
        .join(Composition, Composition.id == Candidate.composition_id)
        .where(Candidate.id == parent_candidate_id, Composition.guild_id == guild_id)
    ):
        raise CandidateNotFound(parent_candidate_id)
    if model_version_id is not None and not await session.scalar(
        select(ModelVersion.id).where(
            ModelVersion.id == model_version_id, ModelVersion.guild_id == guild_id
        )
    ):
        raise ModelVersionNotFound(model_version_id)


async def set_composition_message(
    session: AsyncSession, *, guild_id: int, composition_id: int, message_id: int
) -> None:
    """Remember the message that shows the composition (after the bot posted it)."""
    check_snowflake("guild_id", guild_id)
    check_id("composition_id", composition_id)
    check_snowflake("message_id", message_id)
    async with writing(session):
        result = await session.execute(
            update(Composition)
            .where(Composition.id == composition_id, Composition.guild_id == guild_id)
            .values(message_id=message_id)
        )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise CompositionNotFound(composition_id)


async def delete_composition(session: AsyncSession, *, guild_id: int, composition_id: int) -> None:
    """Remove a composition and its candidates: one that was stored but could never be posted.
    CompositionNotFound if the server has no such composition."""
    check_snowflake("guild_id", guild_id)
    check_id("composition_id", composition_id)
    async with writing(session):
        result = await session.execute(
            delete(Composition).where(
                Composition.id == composition_id, Composition.guild_id == guild_id
            )
        )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise CompositionNotFound(composition_id)


async def get_composition(
    session: AsyncSession, *, guild_id: int, composition_id: int, with_midi: bool = False
) -> Composition:
    """The composition with its candidates (their MIDI only if `with_midi`)."""
    check_snowflake("guild_id", guild_id)
    check_id("composition_id", composition_id)
    async with reading(session):
        composition = (
            await session.scalars(
                select(Composition)
                .options(_load_candidates(with_midi=with_midi))
                .where(Composition.id == composition_id, Composition.guild_id == guild_id)
            )
        ).one_or_none()
    if composition is None:
        raise CompositionNotFound(composition_id)
    return composition


async def get_candidate(session: AsyncSession, *, guild_id: int, candidate_id: int) -> Candidate:
    """One candidate with its MIDI (download, continue, save as seed)."""
    check_snowflake("guild_id", guild_id)
    check_id("candidate_id", candidate_id)
    async with reading(session):
        candidate = (
            await session.scalars(
                select(Candidate)
                .join(Composition, Composition.id == Candidate.composition_id)
                .where(Candidate.id == candidate_id, Composition.guild_id == guild_id)
            )
        ).one_or_none()
    if candidate is None:
        raise CandidateNotFound(candidate_id)
    return candidate


async def get_piece(
    session: AsyncSession, *, guild_id: int, composition_id: int
) -> list[PieceRound]:
    """The piece that ends with `composition_id`, root first.

    Follows composition -> parent candidate -> its composition ... back to the round that
    had no parent. Each round's `continued` candidate (with MIDI) is the one the next round
    continued; the last round's is None (the caller picks how the piece ends).
    """
    check_snowflake("guild_id", guild_id)
    check_id("composition_id", composition_id)
    chain = (
        select(
            Composition.id.label("id"),
            Composition.parent_candidate_id.label("parent_candidate_id"),
            literal(0).label("depth"),
        )
        .where(Composition.id == composition_id, Composition.guild_id == guild_id)
        .cte("chain", recursive=True)
    )
    parent = aliased(Composition)
    chain = chain.union_all(
        select(parent.id, parent.parent_candidate_id, chain.c.depth + 1)
        .join(Candidate, Candidate.composition_id == parent.id)
        .where(
            Candidate.id == chain.c.parent_candidate_id,
            # Checked on every step: a piece never crosses into another server.
            parent.guild_id == guild_id,
            chain.c.depth < MAX_PIECE_ROUNDS,
        )
    )
    async with reading(session):
        links = sorted(
            (
                await session.execute(
                    select(chain.c.id, chain.c.parent_candidate_id, chain.c.depth)
                )
            ).all(),
            key=lambda link: -link.depth,  # root first
        )
        if not links:
            raise CompositionNotFound(composition_id)
        # The continued candidates first, with MIDI: the compositions' candidate lists below
        # then reuse these objects instead of their MIDI-less copies.
        continued_ids = [link.parent_candidate_id for link in links[1:]]
        continued = {
            c.id: c
            for c in await session.scalars(select(Candidate).where(Candidate.id.in_(continued_ids)))
        }
        compositions = {
            c.id: c
            for c in await session.scalars(
                select(Composition)
                .options(_load_candidates(with_midi=False))
                .where(Composition.id.in_([link.id for link in links]))
            )
        }
    rounds = []
    for i, link in enumerate(links):
        next_parent = links[i + 1].parent_candidate_id if i + 1 < len(links) else None
        rounds.append(
            PieceRound(
                composition=compositions[link.id],
                continued=continued.get(next_parent) if next_parent is not None else None,
            )
        )
    return rounds
