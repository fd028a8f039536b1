"""The bot's wiring: the contract `from bot import create_bot, Settings`, no torch, limits."""

from __future__ import annotations

import subprocess
import sys

import discord
import pytest

from bot import Settings, create_bot
from bot.db import create_engine, create_finetune_run, create_sessionmaker, get_finetune_run
from bot.ui.views import composition_view
from engine.api.errors import EngineUnavailable


def test_the_bot_process_never_imports_torch() -> None:
    # A fresh interpreter: this test session itself has imported torch for the engine tests.
    code = (
        "import sys, bot, bot.app, bot.__main__, bot.serve\n"
        "for name in bot.app.EXTENSIONS: __import__(name)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_create_bot_returns_an_unconnected_bot(tmp_path) -> None:
    bot = create_bot(Settings(data_dir=tmp_path))
    assert bot.user is None and not bot.is_ready()
    assert bot.intents.message_content is False  # slash commands need no privileged intent


def test_a_bot_start_logs_no_warning_about_voice_libraries(tmp_path) -> None:
    # A fresh interpreter: discord.py warns once per process, at the first client it makes.
    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
        "from bot import Settings, create_bot\n"
        f"create_bot(Settings(data_dir={str(tmp_path)!r}))\n"
        "logging.getLogger('discord.client').warning('a warning still shows')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "a warning still shows" in done.stderr  # the check below can see warnings
    assert "voice will NOT be supported" not in done.stderr
    assert "PyNaCl" not in done.stderr and "davey" not in done.stderr


def test_a_composition_view_keeps_within_discords_limits() -> None:
    view = composition_view(7, [11, 12, 13, 14], {12: 3})
    rows: dict[int, list[discord.ui.Item[discord.ui.View]]] = {}
    for item in view.children:
        rows.setdefault(item._rendered_row or 0, []).append(item)  # type: ignore[attr-defined]
    assert len(rows) <= 5 and all(len(items) <= 5 for items in rows.values())
    custom_ids = [item.custom_id for item in view.children]  # type: ignore[attr-defined]
    assert len(set(custom_ids)) == len(custom_ids)
    assert all(len(custom_id) <= 100 for custom_id in custom_ids)
    assert "Vote 2 · 3" in [item.label for item in view.children]  # type: ignore[attr-defined]


def test_sync_without_a_token_is_a_one_line_error(tmp_path) -> None:
    env = {"MOTIF_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "sync", "--guild", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: DISCORD_TOKEN is not set; syncing commands needs it"
    ]


@pytest.mark.asyncio(loop_scope="session")
async def test_the_bot_starts_its_own_engine_and_stops_it_on_close(settings) -> None:
    # The production wiring (no engine passed in), without Discord: setup_hook is what
    # login() runs before connecting.
    # `async with` sets the client up as login() does (its loops wait for "ready" on it).
    async with create_bot(settings) as bot:
        await bot.setup_hook()
        commands = {c.name for c in bot.tree.get_commands()}
        assert {"compose", "seed", "top", "piece", "finetune", "model"} <= commands
        stats = await bot.engine.stats()
        assert stats.pid > 0
    with pytest.raises(EngineUnavailable):
        await bot.engine.stats()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_bot_that_starts_fails_the_runs_its_predecessor_left(
    settings, music_engine
) -> None:
    guild_id = 1_105_000_000_000_000_001
    db = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(db)() as session:
            run = await create_finetune_run(session, guild_id=guild_id)
    finally:
        await db.dispose()

    async def status() -> tuple[str, str | None]:
        async with bot.sessions() as session:
            found = await get_finetune_run(session, guild_id=guild_id, run_id=run.id)
        return found.status, found.error

    # `python -m bot sync` builds a bot without an engine: it must not touch a running
    # bot's runs.
    async with create_bot(settings, start_engine=False) as bot:
        await bot.setup_hook()
        assert await status() == ("queued", None)
    async with create_bot(settings, engine=music_engine) as bot:
        await bot.setup_hook()
        state, error = await status()
        assert state == "failed" and "the bot restarted" in (error or "")
