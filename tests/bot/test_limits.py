"""The per-member cooldown and the per-server cap on engine work in flight: compositions,
seed plays and piece exports alike."""

from __future__ import annotations

import pytest

from bot.db import Composition
from bot.services.limits import OnCooldown, TooManyInFlight, Work
from engine.api.errors import BadSeed
from tests.bot.helpers import BOT_TEST, MOTIF, count, raised, refused_privately, reply

pytestmark = BOT_TEST

ONE = {"bars": 4, "candidates": 1}


@pytest.fixture
def limits() -> dict[str, float]:
    return {"compose_cooldown_seconds": 30.0, "max_inflight_per_guild": 1}


async def test_a_member_waits_for_the_cooldown(world) -> None:
    assert (await world.alice.slash(world.channel, "compose", **ONE)).response is not None
    refused = await world.alice.slash(world.channel, "compose", **ONE)
    assert refused_privately(refused)
    assert "you can start another in" in reply(refused).content
    assert raised(world.env) == [OnCooldown]
    assert await count(world.bot, Composition) == 1

    # The cooldown is per member: Bob may compose meanwhile.
    assert not (await world.bob.slash(world.channel, "compose", **ONE)).ephemeral
    await world.env.advance_time(31)
    assert not (await world.alice.slash(world.channel, "compose", **ONE)).ephemeral
    assert await count(world.bot, Composition) == 3


async def test_a_server_has_at_most_its_cap_of_compositions_in_flight(world) -> None:
    # A composition of Bob's holds the server's only slot (as while the engine writes it).
    async with world.bot.limits.slot(world.guild.id, world.bob.id):
        refused = await world.alice.slash(world.channel, "compose", **ONE)
        assert refused_privately(refused)
        assert "already has 1 composition under way" in reply(refused).content
        assert raised(world.env) == [TooManyInFlight]
        # Another server is not affected by this one's cap.
        other = world.env.create_guild("Elsewhere")
        hall = other.create_text_channel("hall")
        carol = other.add_member(world.env.create_user("carol"))
        assert not (await carol.slash(hall, "compose", **ONE)).ephemeral
    # The refusal did not start Alice's cooldown; the slot is free again.
    assert not (await world.alice.slash(world.channel, "compose", **ONE)).ephemeral
    assert await count(world.bot, Composition) == 2


async def test_a_refused_seed_does_not_start_the_cooldown(world) -> None:
    refused = await world.alice.slash(
        world.channel, "compose", seed=("broken.mid", MOTIF[:40]), **ONE
    )
    assert refused_privately(refused) and "broken or truncated" in reply(refused).content
    assert raised(world.env) == [BadSeed]
    # Alice fixes her file and composes at once: the refusal cost her nothing.
    accepted = await world.alice.slash(world.channel, "compose", seed=("motif.mid", MOTIF), **ONE)
    assert accepted.response is not None and not accepted.response.ephemeral
    assert await count(world.bot, Composition) == 1


async def add_intro(world) -> None:
    await world.alice.slash(world.channel, "seed add", file=("motif.mid", MOTIF), name="intro")


async def test_seed_plays_count_against_the_cooldown_and_the_cap(world) -> None:
    await add_intro(world)
    played = await world.alice.slash(world.channel, "seed play", name="intro")
    assert {a.filename for a in reply(played).attachments} == {"intro.ogg", "intro.mid"}
    again = await world.alice.slash(world.channel, "seed play", name="intro")
    assert refused_privately(again)
    assert "You started a seed playback a moment ago" in reply(again).content
    # Nor is a composition a way around it.
    composed = await world.alice.slash(world.channel, "compose", **ONE)
    assert "You started a seed playback a moment ago" in reply(composed).content
    # A second seed play while Bob's first is still being rendered is refused too.
    async with world.bot.limits.slot(world.guild.id, world.bob.id, Work.SEED_PLAY):
        during = await world.bob.slash(world.channel, "seed play", name="intro")
        assert refused_privately(during) and "seed playback" in reply(during).content
    assert raised(world.env) == [OnCooldown, OnCooldown, OnCooldown]


async def test_a_server_at_its_cap_cannot_export(world) -> None:
    posted = (await world.alice.slash(world.channel, "compose", **ONE)).response
    number = int(posted.embeds[0].title.removeprefix("Composition #"))
    async with world.bot.limits.slot(world.guild.id, world.alice.id, Work.SEED_PLAY):
        refused = await world.bob.slash(world.channel, "piece export", composition=number)
        assert refused_privately(refused)
        assert "already has 1 seed playback under way" in reply(refused).content
        assert raised(world.env) == [TooManyInFlight]
    exported = await world.bob.slash(world.channel, "piece export", composition=number)
    assert any(a.filename.endswith(".mid") for a in reply(exported).attachments)
