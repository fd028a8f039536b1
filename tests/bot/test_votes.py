"""Votes on the buttons: cast, move, take back; labels and database agree; /top; restart."""

from __future__ import annotations

import simcord

from bot import create_bot
from bot.db import get_tallies
from tests.bot.helpers import BOT_TEST, SMALL, composition_id, labels, reply

pytestmark = BOT_TEST


def current(world, message: simcord.ResponseMessage) -> simcord.ResponseMessage:
    """The message as it is now (after the bot's edits)."""
    stored = world.env.backend.get_message(world.channel.id, message.id)
    return simcord.ResponseMessage(world.env, stored)


def tallies_on(message: simcord.ResponseMessage) -> list[int]:
    return [int(label.split("·")[1]) for label in labels(message) if label.startswith("Vote")]


async def tallies_in_db(bot, guild_id: int, composition: int) -> list[int]:
    async with bot.sessions() as session:
        tallies = await get_tallies(session, guild_id=guild_id, composition_id=composition)
    return list(tallies.values())


async def click_vote(world, member, message, position: int) -> simcord.InteractionResult:
    shown = labels(current(world, message))
    label = next(lbl for lbl in shown if lbl.startswith(f"Vote {position} "))
    return await member.click(message, label=label)


async def test_two_members_cast_move_and_take_back_votes(world) -> None:
    posted = (await world.alice.slash(world.channel, "compose", **SMALL)).response
    steps = [
        (world.alice, 1, [1, 0], "You voted for candidate 1."),
        (world.bob, 1, [2, 0], "You voted for candidate 1."),
        (world.bob, 2, [1, 1], "Your vote moved to candidate 2."),
        (world.alice, 1, [0, 1], "You took your vote back."),
    ]
    for member, position, expected, said in steps:
        result = await click_vote(world, member, posted, position)
        assert reply(result).ephemeral and reply(result).content == said
        assert tallies_on(current(world, posted)) == expected
        assert await tallies_in_db(world.bot, world.guild.id, composition_id(posted)) == expected

    top = await world.alice.slash(world.channel, "top")
    (embed,) = reply(top).embeds
    link = f"/channels/{world.guild.id}/{world.channel.id}/{posted.id}"
    assert f"composition #{composition_id(posted)}, candidate 2" in embed.description
    assert link in embed.description and "1 vote" in embed.description


async def test_buttons_work_after_a_restart(world, settings, music_engine) -> None:
    posted = (await world.alice.slash(world.channel, "compose", **SMALL)).response
    first = world.bot
    second = create_bot(settings, engine=music_engine)
    await world.env.restart_bot(second)
    try:
        assert world.env.bot is second and second is not first
        await click_vote(world, world.bob, posted, 2)
        assert tallies_on(current(world, posted)) == [0, 1]
        assert await tallies_in_db(second, world.guild.id, composition_id(posted)) == [0, 1]
    finally:
        await second.db.dispose()
