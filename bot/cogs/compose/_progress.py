"""The "thinking..." message shows the engine's progress while a member waits."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import discord

from bot.engine_port import Composing, ProgressEvent, Queued, Rendering

log = logging.getLogger(__name__)

# Discord rate-limits message edits; one a second reads as live and stays well within.
MIN_EDIT_INTERVAL_SECONDS = 1.0


def describe(event: ProgressEvent) -> str:
    if isinstance(event, Queued):
        return f"Waiting for the composer: position {event.position} in the queue..."
    if isinstance(event, Composing):
        return f"Composing... {event.percent:.0f}%"
    if isinstance(event, Rendering):
        return "Rendering the audio..."
    return "Composing..."


class ProgressMessage:
    """Edits the deferred response with the newest progress, never more than once a second.

    The engine may report from any task; `update` only records the event, and one task of
    ours does the editing, so a slow edit never holds the engine client up.
    """

    def __init__(self, interaction: discord.Interaction) -> None:
        self._interaction = interaction
        self._text: str | None = None
        self._shown: str | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def update(self, event: ProgressEvent) -> None:
        self._text = describe(event)
        self._changed.set()

    async def __aenter__(self) -> ProgressMessage:
        self._task = asyncio.create_task(self._run(), name="motif-progress")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Stop before the final edit, so a late progress edit cannot overwrite the result.
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            text = self._text
            if text is not None and text != self._shown:
                try:
                    await self._interaction.edit_original_response(content=text)
                    self._shown = text
                except discord.HTTPException:
                    log.debug("progress edit failed", exc_info=True)
            await asyncio.sleep(MIN_EDIT_INTERVAL_SECONDS)
