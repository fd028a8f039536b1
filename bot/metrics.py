"""Every Prometheus metric of the bot process, defined here and nowhere else.

Code that knows an outcome calls one method (`composition()` around a composition,
`finetune(outcome)` where a run's outcome is recorded); the engine's own figures are read at
scrape time (`observe_engine`). Each bot has its own registry, so several bots in one process
(the tests) do not collide, and nothing is global.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import discord
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.db.errors import StorageError
from bot.errors import UserFacingError
from bot.services.engine_port import EngineStats
from bot.services.limits import OnCooldown, TooManyInFlight
from engine.api.errors import BadRequest, BadSeed, EngineError, EngineUnavailable

# Why a composition was not posted; every reason is exported from the start (at 0), so a
# dashboard's rate() sees the first failure of each.
FAILURE_REASONS = (
    "bad_seed",  # the engine refused the seed (not music, too long, ...)
    "bad_request",  # the engine refused the options
    "limits",  # the member's cooldown or the server's cap on compositions in flight
    "refused",  # any other refusal with a message (attachment not MIDI, seed not found, ...)
    "engine_unavailable",  # the engine is down, restarting or stopping
    "engine_error",  # the engine failed the job (a bug or a crash on its side)
    "timeout",
    "discord",  # Discord refused a call (the post, an upload too large, ...)
    "shutdown",  # the bot stopped before it could finish (see bot.lifecycle)
    "bug",  # anything else: logged with its traceback by bot.errors
)
FINETUNE_OUTCOMES = ("started", "succeeded", "rejected", "failed", "cancelled", "interrupted")
# Seconds from the request to the posted message: a few seconds alone, tens under load.
TIME_TO_POST_BUCKETS = (1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 300)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# The engine's figures exported as they are (EngineStats field: help text).
ENGINE_GAUGES = {
    "queued_jobs": "Compositions waiting for room in the decode batch",
    "active_rows": "Sequences decoding together now",
    "max_rows": "The cap on sequences decoding together",
    "rendering_jobs": "Compositions being rendered to audio",
    "training_jobs": "Fine-tunes running in the engine",
}


def failure_reason(error: BaseException) -> str:
    """The `reason` label of a composition that ended with `error`."""
    error = getattr(error, "original", error)  # app_commands.CommandInvokeError
    if isinstance(error, asyncio.CancelledError):
        return "shutdown"
    if isinstance(error, OnCooldown | TooManyInFlight):
        return "limits"
    if isinstance(error, BadSeed):
        return "bad_seed"
    if isinstance(error, BadRequest):
        return "bad_request"
    if isinstance(error, EngineUnavailable):
        return "engine_unavailable"
    if isinstance(error, EngineError):
        return "engine_error"
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, UserFacingError):
        return error.metrics_reason
    if isinstance(error, StorageError):
        return "refused"
    if isinstance(error, discord.HTTPException):
        return "discord"
    return "bug"


class Metrics:
    def __init__(self, *, in_flight: Callable[[], int] = lambda: 0) -> None:
        self.registry = registry = CollectorRegistry()
        self.compositions_started = Counter(
            "motif_compositions_started",
            "Compositions asked for (/compose, Continue, Reroll)",
            registry=registry,
        )
        self.compositions_posted = Counter(
            "motif_compositions_posted",
            "Compositions posted with their candidates",
            registry=registry,
        )
        self.compositions_failed = Counter(
            "motif_compositions_failed",
            "Compositions not posted, by reason",
            ["reason"],
            registry=registry,
        )
        for reason in FAILURE_REASONS:
            self.compositions_failed.labels(reason)
        self.time_to_post = Histogram(
            "motif_composition_time_to_post_seconds",
            "Seconds from a composition's request to its posted message",
            buckets=TIME_TO_POST_BUCKETS,
            registry=registry,
        )
        in_flight_gauge = Gauge(
            "motif_compositions_in_flight",
            "Compositions being written or posted now",
            registry=registry,
        )
        in_flight_gauge.set_function(in_flight)
        self.finetunes = Counter(
            "motif_finetunes",
            "Fine-tuning runs started, and how they ended",
            ["outcome"],
            registry=registry,
        )
        for outcome in FINETUNE_OUTCOMES:
            self.finetunes.labels(outcome)
        # The engine's figures, as of the last scrape.
        self.engine_up = Gauge(
            "motif_engine_up",
            "1 when the engine answered the last scrape's ping",
            registry=registry,
        )
        self.engine_figures = {
            field: Gauge(f"motif_engine_{field}", text, registry=registry)
            for field, text in ENGINE_GAUGES.items()
        }
        self.engine_restarts = Counter(
            "motif_engine_restarts",
            "Times the engine went away and was started again",
            registry=registry,
        )
        self.decode_tokens = Counter(
            "motif_engine_decode_tokens",
            "Tokens sampled by the engine (rate() of it: decode tokens/s)",
            registry=registry,
        )
        self.decode_steps = Counter(
            "motif_engine_decode_steps", "Batched decode steps of the engine", registry=registry
        )
        self._restarts_seen = 0
        self._engine_pid: int | None = None
        self._engine_tokens = 0
        self._engine_steps = 0

    @asynccontextmanager
    async def composition(self) -> AsyncIterator[None]:
        """Count a composition, and how it ended (posted, with its time, or why not)."""
        started = time.monotonic()
        self.compositions_started.inc()
        try:
            yield
        except BaseException as error:
            self.compositions_failed.labels(failure_reason(error)).inc()
            raise
        self.compositions_posted.inc()
        self.time_to_post.observe(time.monotonic() - started)

    def finetune(self, outcome: str) -> None:
        """A fine-tuning run started, or ended with `outcome` (one of FINETUNE_OUTCOMES)."""
        if outcome not in FINETUNE_OUTCOMES:
            raise ValueError(
                f"outcome must be one of {', '.join(FINETUNE_OUTCOMES)} (received {outcome!r})"
            )
        self.finetunes.labels(outcome).inc()

    def observe_engine(self, stats: EngineStats | None, *, restarts: int) -> None:
        """Copy the engine's figures (None: it did not answer). Its counters start again at 0
        with each engine process: only what they gained is added, so ours never go back."""
        if restarts > self._restarts_seen:
            self.engine_restarts.inc(restarts - self._restarts_seen)
            self._restarts_seen = restarts
        self.engine_up.set(0 if stats is None else 1)
        if stats is None:
            return
        for field, gauge in self.engine_figures.items():
            gauge.set(getattr(stats, field) or 0)
        tokens, steps = stats.tokens or 0, stats.steps or 0
        if stats.pid != self._engine_pid:  # a new engine process counts from 0
            self._engine_pid, self._engine_tokens, self._engine_steps = stats.pid, 0, 0
        self.decode_tokens.inc(max(0, tokens - self._engine_tokens))
        self.decode_steps.inc(max(0, steps - self._engine_steps))
        self._engine_tokens, self._engine_steps = tokens, steps

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)
