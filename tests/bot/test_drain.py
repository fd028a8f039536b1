"""While the bot drains, one gate answers every kind of interaction privately and starts
nothing (the real process and its signals: tests/process/test_shutdown.py)."""

from __future__ import annotations

from bot.db import Composition
from bot.lifecycle import RESTARTING
from tests.bot.helpers import BOT_TEST, SMALL, count, reply

pytestmark = BOT_TEST


async def test_a_draining_bot_tells_every_newcomer_it_is_restarting(world) -> None:
    posted = reply(await world.alice.slash(world.channel, "compose", **SMALL))
    before = await count(world.bot, Composition)
    await world.bot.lifecycle.drain()  # nothing in flight: it returns at once, still draining

    command = await world.alice.slash(world.channel, "compose", **SMALL)
    click = await world.bob.click(posted, label="Reroll")
    vote = await world.bob.click(posted, label="Vote 1 · 0")
    for result in (command, click, vote):
        assert result.response is not None and result.response.ephemeral
        assert result.response.content == RESTARTING
        assert not result.followups
    assert await world.alice.autocomplete(world.channel, "compose", "saved_seed", "") == []
    assert await count(world.bot, Composition) == before
    started = world.bot.metrics.registry.get_sample_value("motif_compositions_started_total")
    assert started == 1
