"""Seeds: add, duplicates, list, get, remove, autocomplete, save a candidate as a seed."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import (
    SEED_MAX_BYTES,
    add_seed,
    autocomplete_seed_names,
    get_composition,
    get_seed,
    get_seed_by_id,
    list_seeds,
    midi_sha256,
    remove_seed,
    save_candidate_as_seed,
)
from bot.db.errors import (
    CandidateNotFound,
    DuplicateSeed,
    DuplicateSeedContent,
    DuplicateSeedName,
    InvalidInput,
    SeedNotFound,
)

from .helpers import ALICE, BOB, GUILD_A, ON_SESSION_LOOP, fake_midi, make_composition

pytestmark = ON_SESSION_LOOP


async def test_add_then_get_by_name_and_id(session: AsyncSession) -> None:
    midi = fake_midi()
    seed = await add_seed(
        session,
        guild_id=GUILD_A,
        name="  Morning   theme ",
        uploader_id=ALICE,
        midi=midi,
        notes=12,
        seconds=4.5,
    )
    assert seed.id > 0
    assert seed.name == "Morning theme"  # whitespace tidied
    assert seed.sha256 == midi_sha256(midi)
    assert seed.created_at.tzinfo is not None

    by_name = await get_seed(session, guild_id=GUILD_A, name="Morning theme")
    assert (by_name.id, by_name.midi, by_name.uploader_id) == (seed.id, midi, ALICE)
    assert (by_name.notes, by_name.seconds) == (12, 4.5)
    assert by_name.created_at == seed.created_at
    by_id = await get_seed_by_id(session, guild_id=GUILD_A, seed_id=seed.id)
    assert by_id.name == "Morning theme"


async def test_duplicate_name_is_a_clear_error(session: AsyncSession) -> None:
    await add_seed(session, guild_id=GUILD_A, name="riff", uploader_id=ALICE, midi=fake_midi())
    with pytest.raises(DuplicateSeedName) as error:
        await add_seed(session, guild_id=GUILD_A, name="riff", uploader_id=BOB, midi=fake_midi())
    assert '"riff"' in error.value.message
    assert len(await list_seeds(session, guild_id=GUILD_A)) == 1


async def test_duplicate_content_names_the_existing_seed(session: AsyncSession) -> None:
    midi = fake_midi()
    await add_seed(session, guild_id=GUILD_A, name="first", uploader_id=ALICE, midi=midi)
    with pytest.raises(DuplicateSeedContent) as error:
        await add_seed(session, guild_id=GUILD_A, name="second", uploader_id=BOB, midi=midi)
    assert error.value.existing_name == "first"
    assert '"first"' in error.value.message
    assert [s.name for s in await list_seeds(session, guild_id=GUILD_A)] == ["first"]


async def test_concurrent_adds_of_one_name_keep_exactly_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async def attempt(i: int) -> object:
        async with sessions() as session:
            try:
                return await add_seed(
                    session, guild_id=GUILD_A, name="race", uploader_id=ALICE, midi=fake_midi()
                )
            except DuplicateSeed as exc:
                return exc

    outcomes = await asyncio.gather(*(attempt(i) for i in range(10)))
    assert sum(not isinstance(o, DuplicateSeed) for o in outcomes) == 1
    assert all(isinstance(o, DuplicateSeedName) for o in outcomes if isinstance(o, Exception))
    async with sessions() as session:
        assert [s.name for s in await list_seeds(session, guild_id=GUILD_A)] == ["race"]


@pytest.mark.parametrize(
    ("name", "midi", "fragment"),
    [
        ("   ", b"MThd", "needs a name"),
        ("x" * 65, b"MThd", "at most 64 characters (received 65)"),
        ("bell\x07", b"MThd", "control"),
        ("empty", b"", "empty"),
        ("huge", b"M" * (SEED_MAX_BYTES + 1), "at most 1 MB"),
    ],
)
async def test_bad_input_is_refused_and_changes_nothing(
    session: AsyncSession, name: str, midi: bytes, fragment: str
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(fragment)):
        await add_seed(session, guild_id=GUILD_A, name=name, uploader_id=ALICE, midi=midi)
    assert await list_seeds(session, guild_id=GUILD_A) == []


async def test_list_is_sorted_and_carries_no_midi(session: AsyncSession) -> None:
    for name in ("b-side", "Anthem", "chorus"):
        await add_seed(session, guild_id=GUILD_A, name=name, uploader_id=ALICE, midi=fake_midi())
    seeds = await list_seeds(session, guild_id=GUILD_A)
    assert [s.name for s in seeds] == sorted(["b-side", "Anthem", "chorus"])
    with pytest.raises(SQLAlchemyError):
        _ = seeds[0].midi  # listings never load MIDI behind the caller's back
    assert [s.name for s in await list_seeds(session, guild_id=GUILD_A, limit=2)] == [
        s.name for s in seeds[:2]
    ]


async def test_remove(session: AsyncSession) -> None:
    midi = fake_midi()
    await add_seed(session, guild_id=GUILD_A, name="gone", uploader_id=ALICE, midi=midi)
    removed = await remove_seed(session, guild_id=GUILD_A, name="gone")
    assert (removed.name, removed.midi) == ("gone", midi)
    with pytest.raises(SeedNotFound):
        await get_seed(session, guild_id=GUILD_A, name="gone")
    with pytest.raises(SeedNotFound, match='no seed named "gone"'):
        await remove_seed(session, guild_id=GUILD_A, name="gone")
    # The name and the content are free again.
    await add_seed(session, guild_id=GUILD_A, name="gone", uploader_id=ALICE, midi=midi)


async def test_removing_a_seed_keeps_compositions_and_their_seed_bytes(
    session: AsyncSession,
) -> None:
    midi = fake_midi()
    seed = await add_seed(session, guild_id=GUILD_A, name="root", uploader_id=ALICE, midi=midi)
    composition = await make_composition(session, seed_id=seed.id, seed_midi=midi)
    await remove_seed(session, guild_id=GUILD_A, name="root")
    kept = await get_composition(session, guild_id=GUILD_A, composition_id=composition.id)
    assert (kept.seed_id, kept.seed_midi) == (None, midi)


async def test_ids_are_never_reused(session: AsyncSession) -> None:
    first = await add_seed(session, guild_id=GUILD_A, name="a", uploader_id=ALICE, midi=fake_midi())
    await remove_seed(session, guild_id=GUILD_A, name="a")
    second = await add_seed(
        session, guild_id=GUILD_A, name="a", uploader_id=ALICE, midi=fake_midi()
    )
    assert second.id > first.id  # an old "play seed" button cannot reach the new seed
    with pytest.raises(SeedNotFound):
        await get_seed_by_id(session, guild_id=GUILD_A, seed_id=first.id)


async def test_autocomplete_by_prefix(session: AsyncSession) -> None:
    names = ["Bass line", "bassoon solo", "Ballad", "100% groove", "100 bpm", "a_b", "axb"]
    for name in names:
        await add_seed(session, guild_id=GUILD_A, name=name, uploader_id=ALICE, midi=fake_midi())

    async def complete(prefix: str, **kwargs: int) -> list[str]:
        return await autocomplete_seed_names(session, guild_id=GUILD_A, prefix=prefix, **kwargs)

    assert await complete("bass") == ["Bass line", "bassoon solo"]  # case-insensitive
    assert await complete("BA", limit=2) == ["Ballad", "Bass line"]
    assert await complete("100%") == ["100% groove"]  # % is a character, not a wildcard
    assert await complete("a_") == ["a_b"]  # and so is _
    assert await complete("zzz") == []
    assert len(await complete("")) == len(names)


async def test_save_a_candidate_as_a_seed(session: AsyncSession) -> None:
    composition = await make_composition(session)
    candidate = composition.candidates[1]
    seed = await save_candidate_as_seed(
        session, guild_id=GUILD_A, candidate_id=candidate.id, name="keeper", uploader_id=BOB
    )
    assert (seed.name, seed.uploader_id, seed.midi) == ("keeper", BOB, candidate.midi)
    with pytest.raises(DuplicateSeedContent):
        await save_candidate_as_seed(
            session, guild_id=GUILD_A, candidate_id=candidate.id, name="again", uploader_id=BOB
        )
    with pytest.raises(CandidateNotFound):
        await save_candidate_as_seed(
            session, guild_id=GUILD_A, candidate_id=10**9, name="nope", uploader_id=BOB
        )


@pytest.mark.parametrize("bad", [0, -1, 2**63, True, "123"])
async def test_impossible_ids_are_programming_errors(session: AsyncSession, bad: object) -> None:
    with pytest.raises(ValueError, match="received"):
        await list_seeds(session, guild_id=bad)  # type: ignore[arg-type]
