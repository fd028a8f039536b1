"""The fine-tuning export: exactly the server's seeds, winners and preference pairs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import Composition, add_seed, cast_vote, export_finetune_data

from .helpers import ALICE, GUILD_A, GUILD_B, ON_SESSION_LOOP, fake_midi, make_composition

pytestmark = ON_SESSION_LOOP


async def vote(session: AsyncSession, composition: Composition, index: int, *users: int) -> None:
    for user in users:
        await cast_vote(
            session,
            guild_id=composition.guild_id,
            composition_id=composition.id,
            candidate_id=composition.candidates[index].id,
            user_id=user,
        )


async def test_export_is_exactly_seeds_winners_and_pairs(session: AsyncSession) -> None:
    u = [ALICE + i for i in range(5)]
    seed_a = await add_seed(
        session, guild_id=GUILD_A, name="a", uploader_id=ALICE, midi=fake_midi()
    )
    seed_b = await add_seed(
        session, guild_id=GUILD_A, name="b", uploader_id=ALICE, midi=fake_midi()
    )

    clear = await make_composition(session, candidates=3)  # 2 votes vs 1 vs 0
    await vote(session, clear, 1, u[0], u[1])
    await vote(session, clear, 0, u[2])
    single = await make_composition(session, candidates=1)  # a lone candidate with a vote
    await vote(session, single, 0, u[0])
    tie = await make_composition(session, candidates=3)  # 1 vs 1: no preference
    await vote(session, tie, 0, u[0])
    await vote(session, tie, 2, u[1])
    await make_composition(session, candidates=2)  # never voted on
    taken_back = await make_composition(session, candidates=2)  # voted, then un-voted
    await vote(session, taken_back, 0, u[3])
    await vote(session, taken_back, 0, u[3])

    # Another server's material never leaks in.
    await add_seed(session, guild_id=GUILD_B, name="a", uploader_id=ALICE, midi=fake_midi())
    elsewhere = await make_composition(session, GUILD_B, candidates=2)
    await vote(session, elsewhere, 0, u[0])

    export = await export_finetune_data(session, guild_id=GUILD_A)

    assert [(s.seed_id, s.name, s.midi) for s in export.seeds] == [
        (seed_a.id, "a", seed_a.midi),
        (seed_b.id, "b", seed_b.midi),
    ]
    assert [(w.composition_id, w.candidate_id, w.votes, w.midi) for w in export.winners] == [
        (clear.id, clear.candidates[1].id, 2, clear.candidates[1].midi),
        (single.id, single.candidates[0].id, 1, single.candidates[0].midi),
    ]
    assert [
        (
            p.composition_id,
            p.chosen_candidate_id,
            p.rejected_candidate_id,
            p.chosen_votes,
            p.rejected_votes,
            p.chosen_midi,
            p.rejected_midi,
        )
        for p in export.pairs
    ] == [
        (clear.id, clear.candidates[1].id, c.id, 2, votes, clear.candidates[1].midi, c.midi)
        for c, votes in ((clear.candidates[0], 1), (clear.candidates[2], 0))
    ]
    assert not export.is_empty


async def test_export_of_a_server_with_nothing(session: AsyncSession) -> None:
    await make_composition(session, GUILD_B)
    export = await export_finetune_data(session, guild_id=GUILD_A)
    assert (export.seeds, export.winners, export.pairs, export.is_empty) == ([], [], [], True)
