"""The little the bot needs from the engine, as a Protocol, so cogs never depend on a backend
(bot.app.open_engine starts the embedded one).

`engine.api.client.EngineClient` (a subprocess today, a job queue later) satisfies it. The request
and result types come from `engine.api.schema`, which is light: no torch in the bot process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from engine.api.schema import (
    DRUMS,
    CandidateResult,
    ComposeRequest,
    ComposeResult,
    Decoding,
    EngineRestarting,
    EngineStats,
    FinetuneProgress,
    FinetuneRequest,
    FinetuneResult,
    ProgressEvent,
    Queued,
    Rendering,
    RenderResult,
    VotedPair,
)

__all__ = [
    "DRUMS",
    "CandidateResult",
    "ComposeRequest",
    "ComposeResult",
    "Decoding",
    "Engine",
    "EngineRestarting",
    "EngineStats",
    "FinetuneProgress",
    "FinetuneRequest",
    "FinetuneResult",
    "ProgressEvent",
    "Queued",
    "RenderResult",
    "Rendering",
    "VotedPair",
]

ProgressCallback = Callable[[ProgressEvent], Awaitable[None] | None]


class Engine(Protocol):
    async def compose(
        self,
        request: ComposeRequest,
        *,
        on_progress: ProgressCallback | None = None,
        handover: bytes | None = None,
    ) -> ComposeResult:
        """Candidates for the request; BadSeed/BadRequest carry text for the member.
        `handover`: kept with the job for this bot's successor where jobs outlive the
        process (the job queue: bot.services.handover)."""
        ...

    async def render(
        self,
        midi: bytes,
        *,
        max_audio_bytes: int | None = None,
        max_seconds: float | None = None,
        guild_id: int | None = None,
        pianoroll: bool = False,
        handover: bytes | None = None,
    ) -> RenderResult:
        """A whole MIDI file as OGG (seed previews, parts of piece exports): at most
        `max_seconds` (None: the engine's most, MOTIF_MAX_RENDER_SECONDS) of it; the result
        says what was cut. `handover`: as for compose.
        `guild_id`: whose turn it is among the engine's whole-file renders.
        `pianoroll`: also draw the whole file (`.pianoroll`, PNG)."""
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
