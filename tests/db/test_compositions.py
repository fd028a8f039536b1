"""Compositions: record with candidates, post, fetch, and the chain of a piece."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import (
    NewCandidate,
    add_model_version,
    add_seed,
    get_candidate,
    get_composition,
    get_piece,
    record_composition,
    set_composition_message,
)
from bot.db.errors import CompositionNotFound, ModelVersionNotFound, SeedNotFound

from .helpers import ALICE, CHANNEL, GUILD_A, ON_SESSION_LOOP, fake_midi, make_composition

pytestmark = ON_SESSION_LOOP

MESSAGE = 1_105_000_000_000_009_999


async def test_record_and_fetch(session: AsyncSession) -> None:
    version = await add_model_version(session, guild_id=GUILD_A, engine_id="1/ckpt/v1")
    seed_midi = fake_midi("seed")
    seed = await add_seed(session, guild_id=GUILD_A, name="s", uploader_id=ALICE, midi=seed_midi)
    params = {"bars": 8, "temperature": 0.9, "instrument": "Acoustic Grand Piano", "tempo": None}
    made = [NewCandidate(midi=fake_midi(), seconds=12.5, notes=40 + i) for i in range(4)]

    composition = await record_composition(
        session,
        guild_id=GUILD_A,
        channel_id=CHANNEL,
        requester_id=ALICE,
        candidates=made,
        params=params,
        seed_id=seed.id,
        seed_midi=seed_midi,
        model_version_id=version.id,
    )
    assert composition.message_id is None
    assert [c.position for c in composition.candidates] == [1, 2, 3, 4]
    assert composition.created_at.tzinfo == UTC

    await set_composition_message(
        session, guild_id=GUILD_A, composition_id=composition.id, message_id=MESSAGE
    )
    loaded = await get_composition(session, guild_id=GUILD_A, composition_id=composition.id)
    assert loaded.params == params
    assert (loaded.message_id, loaded.channel_id, loaded.requester_id) == (MESSAGE, CHANNEL, ALICE)
    assert (loaded.seed_id, loaded.seed_midi, loaded.model_version_id) == (
        seed.id,
        seed_midi,
        version.id,
    )
    assert loaded.created_at == composition.created_at
    assert [(c.seconds, c.notes) for c in loaded.candidates] == [(12.5, 40 + i) for i in range(4)]
    with pytest.raises(SQLAlchemyError):
        _ = loaded.candidates[0].midi  # not asked for, not loaded

    with_midi = await get_composition(
        session, guild_id=GUILD_A, composition_id=composition.id, with_midi=True
    )
    assert [c.midi for c in with_midi.candidates] == [c.midi for c in made]
    candidate = await get_candidate(
        session, guild_id=GUILD_A, candidate_id=composition.candidates[2].id
    )
    assert (candidate.midi, candidate.position, candidate.composition_id) == (
        made[2].midi,
        3,
        composition.id,
    )


async def test_bad_compositions_are_refused(session: AsyncSession) -> None:
    with pytest.raises(ValueError, match=r"1 to 25 candidates \(received 0\)"):
        await make_composition(session, candidates=0)
    with pytest.raises(ValueError, match="params must be plain JSON"):
        await make_composition(session, params={"when": object()})
    with pytest.raises(ValueError, match="received nan"):
        await record_composition(
            session,
            guild_id=GUILD_A,
            channel_id=CHANNEL,
            requester_id=ALICE,
            candidates=[NewCandidate(midi=b"x", seconds=float("nan"), notes=1)],
        )
    with pytest.raises(SeedNotFound):
        await make_composition(session, seed_id=10**6)
    with pytest.raises(ModelVersionNotFound):
        await make_composition(session, model_version_id=10**6)
    with pytest.raises(CompositionNotFound):
        await set_composition_message(
            session, guild_id=GUILD_A, composition_id=10**6, message_id=MESSAGE
        )


async def test_piece_walks_back_to_the_root(session: AsyncSession) -> None:
    root = await make_composition(session)
    second = await make_composition(session, parent_candidate_id=root.candidates[1].id)
    third = await make_composition(session, parent_candidate_id=second.candidates[0].id)
    await make_composition(session, parent_candidate_id=third.candidates[2].id)  # a later round
    await make_composition(session, parent_candidate_id=root.candidates[0].id)  # a branch

    rounds = await get_piece(session, guild_id=GUILD_A, composition_id=third.id)
    assert [r.composition.id for r in rounds] == [root.id, second.id, third.id]
    assert [r.continued.id if r.continued else None for r in rounds] == [
        root.candidates[1].id,
        second.candidates[0].id,
        None,
    ]
    assert rounds[0].continued is not None
    assert rounds[0].continued.midi == root.candidates[1].midi
    assert [len(r.composition.candidates) for r in rounds] == [3, 3, 3]

    alone = await get_piece(session, guild_id=GUILD_A, composition_id=root.id)
    assert [(r.composition.id, r.continued) for r in alone] == [(root.id, None)]
    with pytest.raises(CompositionNotFound):
        await get_piece(session, guild_id=GUILD_A, composition_id=10**6)
