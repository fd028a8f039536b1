"""The real `python -m bot` stops the way a service manager expects: SIGTERM (docker,
systemd, Kubernetes) or SIGINT (Ctrl-C) drains it, answers whoever comes meanwhile, finishes
or clearly fails what is in flight, closes the gateway cleanly, stops the engine, exits 0.

Discord is a loopback stand-in (discord_standin.py); the engine is the real one the bot starts.
Health, readiness and metrics are scraped from the same process.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

import pytest

from bot.lifecycle import NOT_FINISHED, RESTARTING
from tests.process.bot_process import BotProcess, engine_is_gone
from tests.process.discord_standin import EPHEMERAL, DiscordStandIn, Request

SMALL = {"bars": 4, "candidates": 2}
COMPOSE_SECONDS = 180.0  # alone it takes seconds; the whole suite may share the two cores
STOP_SECONDS = 90.0


def _posted(discord_: DiscordStandIn, token: str) -> Request | None:
    """The edit of the "Composing..." message that posted the candidates, if any."""
    return next((r for r in discord_.original_edits(token) if r.files), None)


def _reroll_id(post: Request) -> str:
    custom_ids = [c["custom_id"] for row in post.json["components"] for c in row["components"]]
    return next(i for i in custom_ids if re.fullmatch(r"motif:reroll:\d+", i))


def _restarting_answer(answers: list[dict[str, Any]]) -> bool:
    return (
        len(answers) == 1
        and answers[0]["type"] == 4
        and answers[0]["data"]["content"] == (RESTARTING)
        and answers[0]["data"]["flags"] & EPHEMERAL
    )


STOP_SIGNALS = [pytest.param(s, id=s.name) for s in (signal.SIGTERM, signal.SIGINT)]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("stop_signal", STOP_SIGNALS)
async def test_a_stop_signal_lets_the_composition_in_flight_be_posted(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    async with DiscordStandIn() as discord_, BotProcess(tmp_path, discord_) as bot:
        await bot.wait_ready()
        assert await bot.get("/healthz") == (200, '{"alive": true}')
        first = discord_.slash_command("compose", **SMALL)
        post = await discord_.wait_for(lambda: _posted(discord_, first), COMPOSE_SECONDS)
        assert sorted(post.files) == ["candidate-1.ogg", "candidate-2.ogg", "pianoroll.png"]
        # The counters moved with that composition, and the engine's figures are read.
        await bot.wait_metric("motif_compositions_posted_total", 1)
        assert await bot.metric("motif_compositions_started_total") == 1
        assert await bot.metric("motif_composition_time_to_post_seconds_count") == 1
        assert await bot.metric("motif_compositions_failed_total", reason="bug") == 0
        assert await bot.metric("motif_engine_decode_tokens_total") > 0
        assert await bot.metric("motif_engine_up") == 1
        assert await bot.metric("motif_engine_queued_jobs") == 0

        second = discord_.slash_command("compose", **SMALL)
        deferred = await discord_.wait_for(lambda: discord_.callbacks(second))
        assert deferred[0]["type"] == 5  # "thinking...": the composition is under way
        discord_.hold(second)  # its message edits wait: it stays in flight while we look
        bot.signal(stop_signal)

        readiness = await bot.wait_draining()
        assert readiness["ready"] is False
        late = discord_.button(_reroll_id(post))
        answers = await discord_.wait_for(lambda: discord_.callbacks(late))
        assert _restarting_answer(answers), answers
        assert not discord_.original_edits(late)  # nothing was started for it

        discord_.release(second)
        assert await bot.exit_status(STOP_SECONDS) == 0
        engines = bot.engine_pids()

    second_post = _posted(discord_, second)
    assert second_post is not None, discord_.original_edits(second)
    assert sorted(second_post.files) == ["candidate-1.ogg", "candidate-2.ogg", "pianoroll.png"]
    assert discord_.gateway_close_codes == [1000]
    assert len(engines) == 1 and engine_is_gone(engines[0])
    _assert_json_logs(bot)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("stop_signal", STOP_SIGNALS)
async def test_past_the_grace_the_composition_in_flight_fails_clearly(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    async with (
        DiscordStandIn() as discord_,
        BotProcess(tmp_path, discord_, MOTIF_SHUTDOWN_GRACE_SECONDS="0") as bot,
    ):
        await bot.wait_ready()
        token = discord_.slash_command("compose", **SMALL)
        await discord_.wait_for(lambda: discord_.callbacks(token))
        discord_.hold(token)
        bot.signal(stop_signal)

        await bot.wait_draining()
        late = discord_.slash_command("compose", **SMALL)
        answers = await discord_.wait_for(lambda: discord_.callbacks(late))
        assert _restarting_answer(answers), answers
        await bot.wait_metric("motif_compositions_failed_total", 1, reason="shutdown")
        assert await bot.metric("motif_compositions_posted_total") == 0

        discord_.release(token)
        assert await bot.exit_status(STOP_SECONDS) == 0
        engines = bot.engine_pids()

    edits = discord_.original_edits(token)
    assert edits and edits[-1].json["content"] == NOT_FINISHED and not edits[-1].files
    assert edits[-1].json["embeds"] == [] and edits[-1].json["components"] == []
    assert _posted(discord_, token) is None
    assert discord_.gateway_close_codes == [1000]
    assert len(engines) == 1 and engine_is_gone(engines[0])


def _assert_json_logs(bot: BotProcess) -> None:
    """MOTIF_LOG_FORMAT=json: every line of both processes is one JSON object."""
    assert not bot.other_lines, bot.other_lines[:5]
    assert {entry["process"] for entry in bot.log} == {"bot", "engine"}
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in bot.log)
