"""The per-member cooldown and the per-server cap on compositions in flight."""

from __future__ import annotations

import pytest

from bot.db import Composition
from bot.limits import OnCooldown, TooManyInFlight
from tests.bot.helpers import BOT_TEST, count, raised, reply

pytestmark = BOT_TEST

ONE = {"bars": 4, "candidates": 1}


@pytest.fixture
def limits() -> dict[str, float]:
    return {"compose_cooldown_seconds": 30.0, "max_inflight_per_guild": 1}


async def test_a_member_waits_for_the_cooldown(world) -> None:
    assert (await world.alice.slash(world.channel, "compose", **ONE)).response is not None
    refused = await world.alice.slash(world.channel, "compose", **ONE)
    assert refused.ephemeral and not refused.deferred
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
    with world.bot.limits.slot(world.guild.id, world.bob.id):
        refused = await world.alice.slash(world.channel, "compose", **ONE)
        assert refused.ephemeral
        assert "already has 1 composition being written" in reply(refused).content
        assert raised(world.env) == [TooManyInFlight]
        # Another server is not affected by this one's cap.
        other = world.env.create_guild("Elsewhere")
        hall = other.create_text_channel("hall")
        carol = other.add_member(world.env.create_user("carol"))
        assert not (await carol.slash(hall, "compose", **ONE)).ephemeral
    # The refusal did not start Alice's cooldown; the slot is free again.
    assert not (await world.alice.slash(world.channel, "compose", **ONE)).ephemeral
    assert await count(world.bot, Composition) == 2
