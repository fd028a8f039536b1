"""The bot under SimCord: discord.py's real objects against a simulated Discord, a real
migrated SQLite database per test, and one real engine process (the shipped checkpoint) for
the whole session.

Every async test here runs on the session's event loop (`BOT_TEST` marks in each module),
where the engine client lives. The client is opened here, outside the bot, for two reasons:
one engine process for the whole suite keeps it fast, and SimCord waits for all of the bot's
own tasks to finish after each action, which an engine supervisor started in setup_hook never
does. The bot gets it through create_bot(engine=...), the same object setup_hook would open
(test_app.py checks that production path separately, without Discord).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import discord
import pytest
import pytest_asyncio
import simcord

from bot import Settings, create_bot
from bot.app import MotifBot
from bot.db import migrate
from engine.api.client import EngineClient
from engine.api.config import EngineSettings, WorkLimits


@pytest.fixture(scope="session")
def bot_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bot-db-template") / "motif.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def music_engine(engine_data_dir: Path) -> AsyncIterator[EngineClient]:
    """The real engine process with the shipped checkpoint, shared by every bot test. Its
    data dir holds the folk corpus, which fine-tuning replays and gates on."""
    async with EngineClient.local(
        device="cpu", env={"MOTIF_DATA_DIR": str(engine_data_dir)}
    ) as client:
        yield client


@pytest.fixture
def limits() -> dict[str, float]:
    """Overridden by the limits tests; elsewhere neither limit gets in the way."""
    return {"compose_cooldown_seconds": 0.0, "max_inflight_per_guild": 20}


@pytest.fixture
def tuning_options() -> dict[str, int]:
    """Fine-tuning settings: a few steps, so that a run takes seconds (overridden by tests)."""
    return {"finetune_steps": 8}


@pytest.fixture
def work(request: pytest.FixtureRequest) -> WorkLimits:
    """The engine's work limits as the bot's settings hold them (MOTIF_MAX_*): the defaults,
    or a test's own through `@pytest.mark.parametrize("work", [...], indirect=True)`. The
    shared engine keeps its defaults; these are what the bot checks and asks for."""
    return getattr(request, "param", WorkLimits())


@pytest.fixture
def settings(
    tmp_path: Path,
    bot_db_template: Path,
    limits: dict[str, float],
    tuning_options: dict[str, int],
    work: WorkLimits,
) -> Settings:
    shutil.copyfile(bot_db_template, tmp_path / "motif.db")
    return Settings(  # type: ignore[arg-type]
        data_dir=tmp_path,
        log_level="DEBUG",
        engine=EngineSettings(work=work),
        **limits,
        **tuning_options,
    )


@pytest.fixture
def simcord_bot(settings: Settings, music_engine: EngineClient) -> MotifBot:
    return create_bot(settings, engine=music_engine)


@dataclass
class World:
    env: simcord.Env
    bot: MotifBot
    guild: simcord.GuildHandle
    channel: simcord.ChannelHandle
    alice: simcord.MemberActor
    bob: simcord.MemberActor
    admin: simcord.MemberActor


@pytest_asyncio.fixture(loop_scope="session")
async def world(simcord_env: simcord.Env, simcord_bot: MotifBot) -> AsyncIterator[World]:
    """A server with a channel, two members and one with Manage Server; commands synced."""
    await simcord_bot.tree.sync()
    guild = simcord_env.create_guild("Band")
    channel = guild.create_text_channel("music")
    managers = guild.create_role("Managers", permissions=discord.Permissions(manage_guild=True))
    world = World(
        env=simcord_env,
        bot=simcord_bot,
        guild=guild,
        channel=channel,
        alice=guild.add_member(simcord_env.create_user("alice")),
        bob=guild.add_member(simcord_env.create_user("bob")),
        admin=guild.add_member(simcord_env.create_user("admin"), roles=[managers]),
    )
    try:
        yield world
    finally:
        # SimCord detaches the bot without closing it; the shared engine is not the bot's.
        # A fine-tuning run a test left behind stops here, while the database is open.
        await simcord_bot.tuning.close()
        await simcord_bot.db.dispose()
