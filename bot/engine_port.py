"""The little the bot needs from the engine, as a Protocol, so cogs never depend on a backend.

`engine.client.EngineClient` (a subprocess today, a job queue later) satisfies it. The request
and result types come from `engine.protocol`, which is light: no torch in the bot process.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol

from engine.protocol import (
    DRUMS,
    CandidateResult,
    ComposeRequest,
    ComposeResult,
    Composing,
    EngineStats,
    FinetuneRequest,
    FinetuneResult,
    PreferencePair,
    ProgressEvent,
    Queued,
    Rendering,
    RenderResult,
    Restarting,
    Training,
)

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = [
    "DRUMS",
    "CandidateResult",
    "ComposeRequest",
    "ComposeResult",
    "Composing",
    "Engine",
    "EngineStats",
    "FinetuneRequest",
    "FinetuneResult",
    "PreferencePair",
    "ProgressEvent",
    "Queued",
    "RenderResult",
    "Rendering",
    "Restarting",
    "Training",
    "open_engine",
]

ProgressCallback = Callable[[ProgressEvent], object]


class Engine(Protocol):
    async def compose(
        self, request: ComposeRequest, *, on_progress: ProgressCallback | None = None
    ) -> ComposeResult:
        """Candidates for the request; BadSeed/BadRequest carry text for the member."""
        ...

    async def render(
        self,
        midi: bytes,
        *,
        max_audio_bytes: int | None = None,
        max_seconds: float | None = None,
        guild_id: int | None = None,
    ) -> RenderResult:
        """A whole MIDI file as OGG (seed previews, parts of piece exports): at most
        `max_seconds` (None: the engine's most, MOTIF_MAX_RENDER_SECONDS) of it; the result
        says what was cut.
        `guild_id`: whose turn it is among the engine's whole-file renders."""
        ...

    async def finetune(
        self, request: FinetuneRequest, *, on_progress: ProgressCallback | None = None
    ) -> FinetuneResult:
        """Tune the server's model (minutes); cancelling the awaiting task stops the run."""
        ...

    async def stats(self, timeout: float = 10.0) -> EngineStats:
        """The engine's figures (queue, rows, tokens decoded); EngineUnavailable when down."""
        ...

    @property
    def restarts(self) -> int:
        """How many times the engine was replaced after it went away."""
        ...


def open_engine(settings: Settings) -> AbstractAsyncContextManager[Engine]:
    """The embedded engine: a subprocess the client starts, watches and restarts."""
    # Imported on use: only a bot that starts its own engine needs the client and transport.
    # The bot closes its engine after its drain (bot.lifecycle) has spent the grace on the
    # compositions: what is left then (a seed preview, a piece export) gets a few seconds.
    from bot.lifecycle import FAIL_SECONDS
    from engine.client import EngineClient

    # The engine's variables as the bot checked them (data dir absolute: the engine keeps the
    # servers' checkpoints and the corpus it replays there).
    return EngineClient.local(env=settings.engine.to_env(), close_timeout=FAIL_SECONDS)
