"""/jam through SimCord with the real engine and a real database, on SimCord's virtual clock:
rounds of minutes pass in a moment (env.advance_time), the deadline checker is the cog's
discord.ext.tasks loop."""

from __future__ import annotations

import discord
import pytest
import simcord
from simcord.backend.errors import SetupError
from sqlalchemy import select

from bot import create_bot
from bot.db import Composition, JamRound, get_piece
from tests.bot.helpers import BOT_TEST, assert_audible, count, raised, read, reply

pytestmark = BOT_TEST

JAM = {"rounds": 2, "round_minutes": 1, "bars": 2, "candidates": 2}


def messages(world) -> list[discord.Message]:  # type: ignore[no-untyped-def]
    return world.channel.history()


def rounds_posted(world) -> list[discord.Message]:  # type: ignore[no-untyped-def]
    return [m for m in messages(world) if m.embeds and "Jam round" in (m.embeds[0].title or "")]


def results(world) -> list[discord.Message]:  # type: ignore[no-untyped-def]
    return [m for m in messages(world) if "is closed (" in (m.content or "")]


def ends(world) -> list[discord.Message]:  # type: ignore[no-untyped-def]
    return [m for m in messages(world) if (m.content or "").startswith("**The jam is over.**")]


def button_labels(message: discord.Message) -> list[str]:
    return [c.label or "" for row in message.components for c in row.children]  # type: ignore[attr-defined]


async def vote(world, member, message: discord.Message, position: int) -> simcord.InteractionResult:  # type: ignore[no-untyped-def]
    fresh = next(m for m in messages(world) if m.id == message.id)
    label = next(lbl for lbl in button_labels(fresh) if lbl.startswith(f"Vote {position} "))
    return await member.click(fresh, label=label)


async def test_a_whole_two_round_jam(world) -> None:
    started = await world.alice.slash(world.channel, "jam start", **JAM)
    assert "started a jam: 2 rounds of 1 min" in reply(started).content
    (first,) = rounds_posted(world)
    embed = first.embeds[0]
    assert embed.title.startswith("Jam round 1 of 2 · Composition #")
    assert "<t:" in embed.description and ":R>" in embed.description  # the time left
    assert "Most votes wins" in embed.footer.text
    assert [a.filename for a in first.attachments][:2] == ["candidate-1.ogg", "candidate-2.ogg"]
    assert button_labels(first)[:2] == ["Vote 1 · 0", "Vote 2 · 0"]

    voted = await vote(world, world.bob, first, 2)
    assert reply(voted).content == "You voted for candidate 2."
    await world.env.advance_time(50)
    assert results(world) == []  # not yet
    await world.env.advance_time(15)
    (result,) = results(world)
    assert "Round 1 of 2** is closed (time is up): candidate 2 wins with 1 vote" in result.content
    names = [a.filename for a in result.attachments]
    assert [n.rsplit(".", 1)[1] for n in names] == ["ogg", "mid", "png"]
    assert_audible(await read(result.attachments[0]))
    assert (await read(result.attachments[2])).startswith(b"\x89PNG")  # the piece so far, drawn

    first, second = rounds_posted(world)
    # Round 2 closes early: everyone who voted in round 1 (bob) has voted again.
    await vote(world, world.alice, second, 1)
    assert len(results(world)) == 1
    await vote(world, world.bob, second, 1)
    assert len(results(world)) == 2 and "everyone has voted" in results(world)[1].content
    (end,) = ends(world)
    assert f"Started by <@{world.alice.id}>, 2 rounds" in end.content
    assert "Round 1: candidate 2 (1 vote)" in end.content
    assert "Round 2: candidate 1 (2 votes)" in end.content
    assert [a.filename.rsplit(".", 1)[1] for a in end.attachments] == ["ogg", "mid", "png"]
    assert button_labels(end) == ["Save the piece as a seed"]

    # Stored like /compose's: two compositions, the second continuing the first's winner,
    # so /piece export (and /top, fine-tuning) see the jam's piece and votes.
    assert await count(world.bot, Composition) == 2
    second_id = int(second.embeds[0].title.rsplit("#", 1)[1])
    async with world.bot.sessions() as session:
        piece = await get_piece(session, guild_id=world.guild.id, composition_id=second_id)
    assert len(piece) == 2 and piece[0].continued.position == 2
    exported = await world.alice.slash(world.channel, "piece export", composition=second_id)
    assert reply(exported).attachments

    # The channel is free again; the piece can become a seed.
    shown = await world.bob.click(end, label="Save the piece as a seed")
    text_input = shown.modal["components"][0]["components"][0]["custom_id"]
    saved = await world.bob.submit_modal(shown, {text_input: "friday jam"})
    assert 'Saved the piece as the seed "friday jam"' in reply(saved).content


async def test_pause_resume_and_stop_are_for_the_starter_or_managers(world) -> None:
    await world.alice.slash(world.channel, "jam start", **JAM)
    again = await world.bob.slash(world.channel, "jam start", **JAM)
    assert "already going on in this channel" in reply(again).content
    refused = await world.bob.slash(world.channel, "jam pause")
    assert reply(refused).ephemeral and "Manage Server" in reply(refused).content
    paused = await world.admin.slash(world.channel, "jam pause")
    assert "paused the jam" in reply(paused).content
    await world.env.advance_time(600)  # paused: the clock waits
    assert results(world) == []
    status = await world.bob.slash(world.channel, "jam status")
    assert "**paused**" in reply(status).content
    resumed = await world.alice.slash(world.channel, "jam resume")
    assert "resumed the jam: the vote closes <t:" in reply(resumed).content
    assert "Manage Server" in reply(await world.bob.slash(world.channel, "jam stop")).content
    stopped = await world.alice.slash(world.channel, "jam stop")
    assert reply(stopped).content == "The jam is stopped."
    (end,) = ends(world)
    assert "No round was finished" in end.content
    assert f"stopped by <@{world.alice.id}>" in end.content
    gone = await world.alice.slash(world.channel, "jam status")
    assert "no jam going on" in reply(gone).content
    assert raised(world.env)  # the refusals went through the error handler


async def test_a_restart_in_the_middle_of_a_round_closes_it_once(
    world, settings, music_engine
) -> None:
    await world.alice.slash(world.channel, "jam start", **{**JAM, "rounds": 1})
    (first,) = rounds_posted(world)
    await vote(world, world.bob, first, 2)
    second = create_bot(settings, engine=music_engine)
    await world.env.restart_bot(second)
    try:
        await world.env.advance_time(65)
        (result,) = results(world)  # closed once, by the new bot
        assert "candidate 2 wins with 1 vote" in result.content
        assert len(ends(world)) == 1
        async with second.sessions() as session, session.begin():
            rows = list(await session.scalars(select(JamRound)))
        assert [(r.status, r.winner_votes) for r in rows] == [("closed", 1)]
    finally:
        await second.get_cog("JamCog").cog_unload()  # type: ignore[union-attr]
        await second.db.dispose()


async def test_votes_at_the_deadline(world) -> None:
    await world.alice.slash(world.channel, "jam start", **JAM)
    (first,) = rounds_posted(world)
    await world.env.advance_time(59)
    await vote(world, world.bob, first, 2)  # a second before the deadline: it counts
    await world.env.advance_time(3)
    (result,) = results(world)
    assert "candidate 2 wins with 1 vote" in result.content
    closed = next(m for m in messages(world) if m.id == first.id)
    votes = [
        c
        for row in closed.components
        for c in row.children  # type: ignore[attr-defined]
        if (c.label or "").startswith("Vote ")
    ]
    shown = [(c.label, c.disabled) for c in votes]
    assert shown[:2] == [("Vote 1 · 0", True), ("Vote 2 · 1", True)]  # final votes, locked
    with pytest.raises(SetupError, match="disabled"):  # a member cannot press them any more
        await world.alice.click(closed, label="Vote 1 · 0")
    # A click that races the close (before this edit reaches members) is refused by the
    # database: tests/db/test_jams.py::test_votes_racing_the_close_are_counted_or_refused.
    raised(world.env)
    await world.alice.slash(world.channel, "jam stop")
