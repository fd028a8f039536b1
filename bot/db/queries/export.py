"""What a server's fine-tuning learns from: its seeds, its winners and its preferences."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Candidate, Composition, Seed, Vote
from bot.db.queries._tx import check_snowflake, reading
from bot.db.queries.votes import vote_of_candidate


@dataclass(frozen=True, slots=True)
class ExportSeed:
    seed_id: int
    name: str
    midi: bytes


@dataclass(frozen=True, slots=True)
class ExportWinner:
    """The candidate with strictly the most votes (at least one) of its composition."""

    composition_id: int
    candidate_id: int
    votes: int
    midi: bytes


@dataclass(frozen=True, slots=True)
class PreferencePair:
    """The members preferred `chosen` (a winner) to `rejected` (another candidate of the
    same composition)."""

    composition_id: int
    chosen_candidate_id: int
    rejected_candidate_id: int
    chosen_votes: int
    rejected_votes: int
    chosen_midi: bytes
    rejected_midi: bytes


@dataclass(frozen=True, slots=True)
class FinetuneExport:
    guild_id: int
    seeds: list[ExportSeed]
    winners: list[ExportWinner]
    pairs: list[PreferencePair]

    @property
    def is_empty(self) -> bool:
        return not (self.seeds or self.winners)


@dataclass(frozen=True, slots=True)
class _Scored:
    candidate_id: int
    composition_id: int
    votes: int
    midi: bytes


async def export_finetune_data(session: AsyncSession, *, guild_id: int) -> FinetuneExport:
    """Everything the server's next fine-tune learns from, in a stable order.

    Winners: per composition with votes, the candidate with the most votes, if exactly one
    candidate has that many (a tie for first expresses no preference, so it yields nothing).
    Pairs: each winner against every other candidate of its composition.
    """
    check_snowflake("guild_id", guild_id)
    votes = func.count(Vote.user_id)
    voted = select(Vote.composition_id).distinct()
    scored_query = (
        select(Candidate.id, Candidate.composition_id, votes, Candidate.midi)
        .join(Composition, Composition.id == Candidate.composition_id)
        .outerjoin(Vote, vote_of_candidate())
        .where(Composition.guild_id == guild_id, Composition.id.in_(voted))
        .group_by(Candidate.id)
        .order_by(Candidate.composition_id, Candidate.position)
    )
    async with reading(session):
        seeds = [
            ExportSeed(seed_id=seed_id, name=name, midi=midi)
            for seed_id, name, midi in await session.execute(
                select(Seed.id, Seed.name, Seed.midi)
                .where(Seed.guild_id == guild_id)
                .order_by(Seed.id)
            )
        ]
        by_composition: dict[int, list[_Scored]] = defaultdict(list)
        for candidate_id, composition_id, count, midi in await session.execute(scored_query):
            by_composition[composition_id].append(
                _Scored(candidate_id, composition_id, count, midi)
            )

    winners: list[ExportWinner] = []
    pairs: list[PreferencePair] = []
    for composition_id, scored in by_composition.items():
        best = max(s.votes for s in scored)
        leaders = [s for s in scored if s.votes == best]
        if best < 1 or len(leaders) != 1:
            continue
        chosen = leaders[0]
        winners.append(ExportWinner(composition_id, chosen.candidate_id, chosen.votes, chosen.midi))
        pairs.extend(
            PreferencePair(
                composition_id=composition_id,
                chosen_candidate_id=chosen.candidate_id,
                rejected_candidate_id=other.candidate_id,
                chosen_votes=chosen.votes,
                rejected_votes=other.votes,
                chosen_midi=chosen.midi,
                rejected_midi=other.midi,
            )
            for other in scored
            if other is not chosen
        )
    return FinetuneExport(guild_id=guild_id, seeds=seeds, winners=winners, pairs=pairs)
