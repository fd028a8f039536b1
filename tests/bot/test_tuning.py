"""/finetune and /model through SimCord, with a real migrated database and the real engine
tuning its model for a few steps on Bach chorales (a server's "taste").

A run goes on in the background after /finetune start has answered; SimCord waits for the
bot's own tasks after each action, so a run started by a command has ended when the command
returns. The tests that need a run *in progress* (cancel, a second start, shutdown) start it
through the bot's runner from the test itself, which SimCord does not wait for.
"""

from __future__ import annotations

import asyncio
import time
from hashlib import sha1
from pathlib import Path

import discord
import pytest
import simcord
from sqlalchemy import select

from bot import create_bot
from bot.app import MotifBot
from bot.db import (
    Composition,
    FinetuneRun,
    Guild,
    ModelVersion,
    add_seed,
    get_composition,
)
from engine.api.client import EngineClient
from tests.bot.helpers import BAND, MOTIF, SMALL, composition_id, raised, reply

pytestmark = [
    pytest.mark.asyncio(loop_scope="session"),
    # A command that starts a run returns once the run has ended: a few tuning steps, plus
    # the gate's evaluations, on a shared 2-core CPU.
    pytest.mark.simcord(settle_timeout=600.0),
]

COMMANDS = ["finetune start", "finetune status", "finetune cancel", "model info", "model rollback"]
# Long enough that a run is still going when the test acts on it.
LONG_RUN = {"finetune_steps": 20_000}


# --- looks into the database -------------------------------------------------------------


async def runs(bot: MotifBot, guild_id: int) -> list[FinetuneRun]:
    async with bot.sessions() as session, session.begin():
        query = select(FinetuneRun).where(FinetuneRun.guild_id == guild_id).order_by(FinetuneRun.id)
        return list((await session.scalars(query)).all())


async def versions(bot: MotifBot, guild_id: int) -> list[ModelVersion]:
    async with bot.sessions() as session, session.begin():
        query = select(ModelVersion).where(ModelVersion.guild_id == guild_id)
        return list((await session.scalars(query.order_by(ModelVersion.id))).all())


async def active_version(bot: MotifBot, guild_id: int) -> int | None:
    async with bot.sessions() as session, session.begin():
        return await session.scalar(
            select(Guild.active_model_version_id).where(Guild.id == guild_id)
        )


async def model_of(bot: MotifBot, guild_id: int, message: simcord.ResponseMessage) -> int | None:
    async with bot.sessions() as session:
        stored = await get_composition(
            session, guild_id=guild_id, composition_id=composition_id(message)
        )
    return stored.model_version_id


async def add_seeds(bot: MotifBot, guild_id: int, uploader_id: int, files: list[Path]) -> None:
    async with bot.sessions() as session:
        for path in files:
            await add_seed(
                session,
                guild_id=guild_id,
                name=path.stem,
                uploader_id=uploader_id,
                midi=path.read_bytes(),
            )


async def wait_until_running(bot: MotifBot, guild_id: int, timeout: float = 300.0) -> FinetuneRun:
    """The run once the engine reports progress (the test's own clock, not SimCord's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (run,) = await runs(bot, guild_id)
        if run.status == "running" and run.metrics.get("phase"):
            return run
        await asyncio.sleep(0.5)
    raise AssertionError(f"the run did not start within {timeout} s")


def other_server(world) -> tuple[simcord.ChannelHandle, simcord.MemberActor]:
    """A second server's channel and one of its members with Manage Server."""
    other = world.env.create_guild("Elsewhere")
    managers = other.create_role("Managers", permissions=discord.Permissions(manage_guild=True))
    carol = other.add_member(world.env.create_user("carol"), roles=[managers])
    return other.create_text_channel("hall"), carol


async def wait_for_idle_engine(engine: EngineClient, timeout: float = 60.0) -> None:
    """Until the engine has no fine-tune left (it stops one a moment after being told)."""
    deadline = time.monotonic() + timeout
    while (await engine.stats()).training_jobs:
        assert time.monotonic() < deadline, "the engine is still fine-tuning"
        await asyncio.sleep(0.5)


def bot_embeds(channel: simcord.ChannelHandle) -> list[object]:
    """Embeds the bot posted in the channel by itself (announcements), oldest first."""
    return [
        e
        for m in channel.history()
        if m.author.bot and not m.interaction_metadata
        for e in m.embeds
    ]


def raised_names(world) -> list[str]:
    """The errors the commands raised, by name: closing a bot unloads its extensions, so the
    next bot's cog modules (and their error classes) are fresh imports, not this file's."""
    return [error.__name__ for error in raised(world.env)]


def shown(embed: object) -> str:
    """An embed's text, fields included, for assertions."""
    parts = [embed.title or "", embed.description or ""]  # type: ignore[attr-defined]
    parts += [f"{f.name}: {f.value}" for f in embed.fields]  # type: ignore[attr-defined]
    return "\n".join(parts)


# --- who may, and with what ------------------------------------------------------------------


def finetunes(bot: MotifBot, outcome: str) -> float | None:
    """The bot's count of fine-tunes with this outcome (bot.metrics)."""
    return bot.metrics.registry.get_sample_value("motif_finetunes_total", {"outcome": outcome})


async def test_only_members_with_manage_server_see_and_run_the_commands(world) -> None:
    assert set(COMMANDS) <= set(world.admin.available_commands(world.channel))
    assert not set(COMMANDS) & set(world.bob.available_commands(world.channel))
    with pytest.raises(simcord.SetupError, match="not visible"):
        await world.bob.slash(world.channel, "finetune start")

    # A server's admins may open the commands to anyone; the bot still requires the
    # permission, and nothing changes.
    async with world.bot.sessions() as session:
        await add_seed(
            session, guild_id=world.guild.id, name="motif", uploader_id=world.alice.id, midi=MOTIF
        )
    for command in await world.bot.tree.fetch_commands():
        if command.name in ("finetune", "model"):
            world.guild.set_command_permissions(command, {world.bob: True})
    for command in COMMANDS:
        result = await world.bob.slash(world.channel, command)
        answer = reply(result)
        assert answer.ephemeral, command
        assert answer.content == "You need the Manage Server permission for that.", command
    assert raised_names(world) == ["MissingPermissions"] * len(COMMANDS)
    assert await runs(world.bot, world.guild.id) == []
    assert await versions(world.bot, world.guild.id) == []
    assert bot_embeds(world.channel) == []


async def test_nothing_to_learn_from_is_said_plainly_and_creates_nothing(world) -> None:
    started = await world.admin.slash(world.channel, "finetune start")
    assert reply(started).ephemeral and "nothing to learn from yet" in reply(started).content
    assert started.response is None  # the public "thinking..." message is gone
    status = await world.admin.slash(world.channel, "finetune status")
    assert "never fine-tuned" in reply(status).content
    info = await world.admin.slash(world.channel, "model info")
    assert "**base model**" in (reply(info).embeds[0].description or "")
    rollback = await world.admin.slash(world.channel, "model rollback")
    assert "already uses the base model" in reply(rollback).content
    cancel = await world.admin.slash(world.channel, "finetune cancel")
    assert "No fine-tuning run is in progress" in reply(cancel).content
    assert raised_names(world) == ["NothingToLearn", "NoEarlierModelVersion", "NoRunInProgress"]
    assert await runs(world.bot, world.guild.id) == []


async def test_too_little_data_fails_the_run_with_the_engines_reason(world, chorale_files) -> None:
    await add_seeds(world.bot, world.guild.id, world.alice.id, chorale_files[:2])
    started = await world.admin.slash(world.channel, "finetune start")
    assert "run #" in reply(started).content and not reply(started).ephemeral
    (run,) = await runs(world.bot, world.guild.id)
    assert run.status == "failed" and run.finished_at is not None
    assert "at least 3 different pieces" in (run.error or "")
    (announced,) = bot_embeds(world.channel)
    assert "failed" in announced.title and "at least 3 different pieces" in shown(announced)
    assert await versions(world.bot, world.guild.id) == []
    assert await active_version(world.bot, world.guild.id) is None
    assert (finetunes(world.bot, "started"), finetunes(world.bot, "failed")) == (1, 1)


async def test_an_unavailable_engine_fails_the_run_clearly(world, chorale_files) -> None:
    # A real engine client that has shut down: every call says the engine is unavailable.
    stopped = EngineClient.local(device="cpu")
    await stopped.start()
    await stopped.aclose()
    world.bot.engine = stopped
    await add_seeds(world.bot, world.guild.id, world.alice.id, chorale_files[:4])
    await world.admin.slash(world.channel, "finetune start")
    (run,) = await runs(world.bot, world.guild.id)
    assert run.status == "failed" and "music engine was not available" in (run.error or "")
    (announced,) = bot_embeds(world.channel)
    assert "music engine was not available" in shown(announced)
    assert await versions(world.bot, world.guild.id) == []
    # The run no longer blocks the next one.
    assert not world.bot.tuning.is_running(world.guild.id)


# --- a whole run -----------------------------------------------------------------------------


async def test_a_server_tunes_on_its_chorales_composes_with_it_and_rolls_back(
    world, chorale_files, engine_data_dir
) -> None:
    guild_id = world.guild.id
    hall, carol = other_server(world)
    await add_seeds(world.bot, guild_id, world.alice.id, chorale_files)

    started = await world.admin.slash(world.channel, "finetune start")
    assert reply(started).content.startswith("Fine-tuning run #")
    assert "from the base model: learning from 8 seeds" in reply(started).content

    # The run has ended: its version, figures and verdict are stored, and it serves.
    (run,) = await runs(world.bot, guild_id)
    (version,) = await versions(world.bot, guild_id)
    assert run.status == "succeeded" and run.error is None
    assert (run.channel_id, run.requester_id) == (world.channel.id, world.admin.id)
    assert run.model_version_id == version.id
    assert version.status == "ready" and version.parent_id is None
    figures = version.metrics
    assert figures["server_nll_after"] < figures["server_nll_before"]
    assert figures["base_nll_after"] <= figures["base_nll_reference"] * 1.05
    assert figures["tuning_steps"] >= 1 and figures["accepted"] is True
    # The bot holds the engine's id of the version; the file is the engine's own.
    assert version.engine_id.startswith(f"{guild_id}/")
    assert (engine_data_dir / "models" / f"{version.engine_id}.pt").is_file()
    assert await active_version(world.bot, guild_id) == version.id
    (announced,) = bot_embeds(world.channel)
    assert announced.title == f"Fine-tuning run #{run.id}: v{version.id} now composes here"
    text = shown(announced)
    assert "Accepted" in text and "bits/token" in text and "tuning step" in text

    status = reply(await world.admin.slash(world.channel, "finetune status")).embeds[0]
    assert "succeeded" in shown(status) and f"v{version.id}, accepted" in shown(status)
    info = reply(await world.admin.slash(world.channel, "model info")).embeds[0]
    assert f"composes with **v{version.id}**" in (info.description or "")
    assert "held-out pieces" in shown(info)

    # This server's next composition uses the new version; another server's, the base model.
    tuned = (await world.alice.slash(world.channel, "compose", **SMALL)).response
    assert {f.name: f.value for f in tuned.embeds[0].fields}["Model"] == f"v{version.id}"
    assert await model_of(world.bot, guild_id, tuned) == version.id
    stats = await world.bot.engine.stats()
    assert version.engine_id in stats.models
    base = (await carol.slash(hall, "compose", **SMALL)).response
    assert {f.name: f.value for f in base.embeds[0].fields}["Model"] == "base model"
    assert await model_of(world.bot, carol.guild.id, base) is None

    # The other server sees none of it and cannot roll it back.
    assert "never fine-tuned" in reply(await carol.slash(hall, "finetune status")).content
    rollback = await carol.slash(hall, "model rollback")
    assert "already uses the base model" in reply(rollback).content
    assert await active_version(world.bot, guild_id) == version.id

    rolled = reply(await world.admin.slash(world.channel, "model rollback"))
    assert rolled.content.startswith(f"Rolled back from v{version.id} to the base model")
    assert not rolled.ephemeral
    assert await active_version(world.bot, guild_id) is None
    again = (await world.alice.slash(world.channel, "compose", **SMALL)).response
    assert await model_of(world.bot, guild_id, again) is None
    assert raised_names(world) == ["NoEarlierModelVersion"]
    async with world.bot.sessions() as session, session.begin():
        used = await session.scalars(select(Composition.model_version_id).order_by(Composition.id))
        assert list(used) == [version.id, None, None]


@pytest.mark.parametrize("tuning_options", [{"finetune_steps": 20}])
async def test_a_gate_rejection_is_announced_and_the_server_keeps_its_model(
    world, chorale_files, tuning_options
) -> None:
    # The engine holds out the piece with the smallest SHA-1: here the band loop (drums, bass,
    # piano). Twenty steps on two chorales do not make it likelier (10.473 bits/token before,
    # with the shipped model, on the development machine), so the gate keeps the start weights
    # and rejects them as no better. The engine's runs are seeded, so this repeats.
    guild_id = world.guild.id
    chorales = [p for p in chorale_files if p.stem in ("bwv102.7", "bwv248.23-s")]
    assert len(chorales) == 2, "music21's chorale files changed"
    assert all(sha1(BAND).hexdigest() < sha1(p.read_bytes()).hexdigest() for p in chorales)
    async with world.bot.sessions() as session:
        await add_seed(
            session, guild_id=guild_id, name="band", uploader_id=world.alice.id, midi=BAND
        )
    await add_seeds(world.bot, guild_id, world.alice.id, chorales)

    await world.admin.slash(world.channel, "finetune start")
    (run,) = await runs(world.bot, guild_id)
    (version,) = await versions(world.bot, guild_id)
    assert run.status == "succeeded" and run.model_version_id == version.id
    assert version.status == "rejected" and version.metrics["accepted"] is False
    assert version.metrics["server_nll_after"] >= version.metrics["server_nll_before"]
    assert await active_version(world.bot, guild_id) is None
    assert (finetunes(world.bot, "rejected"), finetunes(world.bot, "succeeded")) == (1, 0)
    (announced,) = bot_embeds(world.channel)
    assert announced.title == f"Fine-tuning run #{run.id}: not used"
    assert (announced.description or "").startswith(
        "Rejected: it did not fit this server's held-out pieces better"
    )
    assert "This server keeps the base model" in (announced.description or "")
    assert "bits/token" in shown(announced)

    status = shown(reply(await world.admin.slash(world.channel, "finetune status")).embeds[0])
    assert f"v{version.id}, rejected: it did not fit" in status
    info = reply(await world.admin.slash(world.channel, "model info")).embeds[0]
    assert "**base model**" in (info.description or "")
    assert f"**v{version.id}** · rejected by the quality check" in shown(info)


# --- runs in progress ------------------------------------------------------------------------


@pytest.mark.parametrize("tuning_options", [LONG_RUN])
async def test_a_second_start_is_refused_and_cancel_stops_the_run(
    world, chorale_files, tuning_options
) -> None:
    guild_id = world.guild.id
    hall, dave = other_server(world)
    await add_seeds(world.bot, guild_id, world.alice.id, chorale_files[:4])
    job = await world.bot.tuning.start(
        guild_id=guild_id, channel_id=world.channel.id, requester_id=world.admin.id
    )
    run = await wait_until_running(world.bot, guild_id)
    assert run.id == job.run_id

    again = reply(await world.admin.slash(world.channel, "finetune start"))
    assert (
        again.ephemeral
        and f"already queued or running on this server (run #{run.id})" in again.content
    )
    status = reply(await world.admin.slash(world.channel, "finetune status")).embeds[0]
    assert "running:" in (status.description or "") and "%" in (status.description or "")
    blocked = reply(await world.admin.slash(world.channel, "model rollback"))
    assert "/finetune cancel first" in blocked.content
    # Another server can neither see nor stop this run.
    assert "never fine-tuned" in reply(await dave.slash(hall, "finetune status")).content
    assert "No fine-tuning run" in reply(await dave.slash(hall, "finetune cancel")).content
    assert world.bot.tuning.is_running(guild_id)

    cancelled = reply(await world.admin.slash(world.channel, "finetune cancel"))
    assert cancelled.content == (
        f"Fine-tuning run #{run.id} was cancelled by <@{world.admin.id}>. "
        "This server keeps the base model."
    )
    (run,) = await runs(world.bot, guild_id)
    assert run.status == "cancelled" and run.error == f"cancelled by <@{world.admin.id}>"
    assert await versions(world.bot, guild_id) == []
    assert raised_names(world) == ["FinetuneAlreadyRunning", "RunBlocksRollback", "NoRunInProgress"]
    await wait_for_idle_engine(world.bot.engine)  # the engine stopped tuning too


@pytest.mark.parametrize("tuning_options", [LONG_RUN])
async def test_closing_the_bot_fails_the_run_in_progress_and_says_so(
    world, chorale_files, tuning_options
) -> None:
    guild_id = world.guild.id
    await add_seeds(world.bot, guild_id, world.alice.id, chorale_files[:4])
    await world.bot.tuning.start(guild_id=guild_id, channel_id=world.channel.id, requester_id=None)
    await wait_until_running(world.bot, guild_id)
    await world.bot.tuning.close()
    (run,) = await runs(world.bot, guild_id)
    assert run.status == "failed" and "the bot shut down" in (run.error or "")
    (announced,) = bot_embeds(world.channel)
    assert "failed" in announced.title and "The bot shut down during the run" in shown(announced)
    refused = reply(await world.admin.slash(world.channel, "finetune start"))
    assert "restarting" in refused.content
    assert raised_names(world) == ["ShuttingDown"]
    assert (finetunes(world.bot, "started"), finetunes(world.bot, "interrupted")) == (1, 1)
    await wait_for_idle_engine(world.bot.engine)


# --- automatic runs --------------------------------------------------------------------------


@pytest.mark.parametrize("tuning_options", [{"finetune_steps": 8, "finetune_auto_after": 3}])
async def test_a_run_starts_by_itself_after_enough_new_seeds_and_votes(
    world, chorale_files, tuning_options
) -> None:
    guild_id = world.guild.id
    # Two seeds, saved before the bot could notice, then a composition: not enough yet.
    await add_seeds(world.bot, guild_id, world.alice.id, chorale_files[:2])
    posted = (await world.alice.slash(world.channel, "compose", **SMALL)).response
    assert await runs(world.bot, guild_id) == []
    # The first vote is the third new seed or vote: a run starts and is announced here.
    await world.bob.click(posted, label="Vote 1 · 0")
    (run,) = await runs(world.bot, guild_id)
    assert run.requester_id is None and run.channel_id == world.channel.id
    assert run.status == "succeeded"
    said = [m.content for m in world.channel.history() if "started automatically" in m.content]
    assert len(said) == 1 and f"run #{run.id} started automatically" in said[0]
    assert "2 seeds, 1 winning candidate and 1 preference pair" in said[0]
    (result,) = bot_embeds(world.channel)
    assert f"run #{run.id}" in result.title
    # Counting starts again after a run: two new seeds are not enough for another.
    for name, midi in (("motif", MOTIF), ("third", chorale_files[2].read_bytes())):
        await world.alice.slash(world.channel, "seed add", file=(f"{name}.mid", midi), name=name)
    assert len(await runs(world.bot, guild_id)) == 1


# --- two bot processes on one database -------------------------------------------------------


async def test_a_second_bot_on_the_database_leaves_the_first_ones_live_run_alone(
    world, settings, music_engine, chorale_files
) -> None:
    guild_id = world.guild.id
    await add_seeds(world.bot, guild_id, world.alice.id, chorale_files[:4])
    job = await world.bot.tuning.start(
        guild_id=guild_id, channel_id=world.channel.id, requester_id=world.admin.id
    )
    await wait_until_running(world.bot, guild_id)
    # A second bot process starts on the same database (a restart overlapping the old
    # process, or another shard): its start-up recovery runs while the first one tunes.
    second = create_bot(settings, engine=music_engine)
    await second.setup_hook()
    try:
        (run,) = await runs(world.bot, guild_id)
        assert run.status == "running" and run.error is None
    finally:
        await second.close()
    # The first bot's run goes on to its result, recorded whole: the run, the version and
    # the server's model agree.
    deadline = time.monotonic() + 300
    while world.bot.tuning.is_running(guild_id):
        assert time.monotonic() < deadline, "the run did not finish"
        await asyncio.sleep(0.5)
    (run,) = await runs(world.bot, guild_id)
    (version,) = await versions(world.bot, guild_id)
    assert run.id == job.run_id and run.status == "succeeded"
    assert run.model_version_id == version.id
    expected = version.id if version.status == "ready" else None
    assert await active_version(world.bot, guild_id) == expected
