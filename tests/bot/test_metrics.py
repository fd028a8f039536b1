"""The metrics module: outcomes by reason, and the engine's counters kept monotonic."""

from __future__ import annotations

import asyncio

import discord
import pytest
from discord import app_commands

from bot.cogs.compose import NotPosted
from bot.db.errors import SeedNotFound
from bot.errors import UserFacingError
from bot.metrics import FAILURE_REASONS, Metrics, failure_reason
from bot.services.engine_port import EngineStats
from bot.services.limits import OnCooldown, TooManyInFlight
from engine.api.errors import BadRequest, BadSeed, EngineError, EngineUnavailable


def _stats(pid: int, tokens: int, steps: int, **figures: int) -> EngineStats:
    defaults = dict(
        device="cpu",
        active_rows=2,
        max_rows=64,
        active_jobs=1,
        queued_jobs=3,
        rendering_jobs=0,
        jobs=4,
        models=[],
        training_jobs=0,
    )
    return EngineStats(pid=pid, tokens=tokens, steps=steps, **{**defaults, **figures})


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OnCooldown(3.0), "limits"),
        (TooManyInFlight(2), "limits"),
        (BadSeed("that file is not MIDI"), "bad_seed"),
        (BadRequest("bars must be within 1 and 64 (received 80)"), "bad_request"),
        (EngineUnavailable("down"), "engine_unavailable"),
        (EngineError("the engine could not render this composition"), "engine_error"),
        (TimeoutError(), "timeout"),
        (SeedNotFound("intro"), "refused"),
        (UserFacingError("Give either an attached seed or a saved seed, not both."), "refused"),
        (NotPosted(), "discord"),
        (asyncio.CancelledError(), "shutdown"),
        (KeyError("bug"), "bug"),
    ],
)
def test_every_failure_has_a_reason_from_the_fixed_list(error: BaseException, reason: str) -> None:
    assert failure_reason(error) == reason
    assert reason in FAILURE_REASONS


def test_a_command_error_is_classified_by_what_it_wraps() -> None:
    command = app_commands.Command(name="compose", description="x", callback=_noop)
    wrapped = app_commands.CommandInvokeError(command, BadSeed("no notes"))
    assert failure_reason(wrapped) == "bad_seed"


async def _noop(interaction: discord.Interaction) -> None:
    return None


async def test_a_composition_counts_as_posted_or_failed_once() -> None:
    metrics = Metrics()
    async with metrics.composition():
        pass
    with pytest.raises(BadSeed):
        async with metrics.composition():
            raise BadSeed("no notes")
    sample = metrics.registry.get_sample_value
    assert sample("motif_compositions_started_total") == 2
    assert sample("motif_compositions_posted_total") == 1
    assert sample("motif_compositions_failed_total", {"reason": "bad_seed"}) == 1
    assert sample("motif_compositions_failed_total", {"reason": "bug"}) == 0
    assert sample("motif_composition_time_to_post_seconds_count") == 1


def test_engine_counters_never_go_back_when_the_engine_restarts() -> None:
    metrics = Metrics()
    metrics.observe_engine(_stats(pid=10, tokens=500, steps=100), restarts=0)
    metrics.observe_engine(_stats(pid=10, tokens=800, steps=150), restarts=0)
    metrics.observe_engine(None, restarts=1)  # the engine died and is restarting
    metrics.observe_engine(_stats(pid=11, tokens=40, steps=10, queued_jobs=0), restarts=1)
    sample = metrics.registry.get_sample_value
    assert sample("motif_engine_decode_tokens_total") == 840
    assert sample("motif_engine_decode_steps_total") == 160
    assert sample("motif_engine_restarts_total") == 1
    assert sample("motif_engine_up") == 1 and sample("motif_engine_queued_jobs") == 0
    assert b"motif_engine_active_rows 2.0" in metrics.exposition()


def test_an_unknown_finetune_outcome_is_a_bug_not_a_new_label() -> None:
    with pytest.raises(ValueError, match=r"received 'won'"):
        Metrics().finetune("won")
