"""The "thinking..." message shows the engine's progress while a member waits."""

from __future__ import annotations

import logging

import discord

from bot.ui.throttled import Throttled
from engine.api.schema import Decoding, EngineRestarting, ProgressEvent, Queued, Rendering

log = logging.getLogger(__name__)

# Discord rate-limits message edits; one a second reads as live and stays well within.
MIN_EDIT_INTERVAL_SECONDS = 1.0


def describe(event: ProgressEvent) -> str:
    if isinstance(event, Queued):
        return f"Waiting for the composer: position {event.position} in the queue..."
    if isinstance(event, Decoding):
        return f"Composing... {event.percent:.0f}%"
    if isinstance(event, Rendering):
        return "Rendering the audio..."
    if isinstance(event, EngineRestarting):
        return "The composer restarted; your composition is starting again..."
    return "Composing..."


class ProgressMessage(Throttled[str]):
    """Edits the deferred response with the newest progress, never more than once a second.

    The engine may report from any task; `update` only records the event, and one task of
    ours does the editing, so a slow edit never holds the engine client up. Leaving the
    context stops the editing before the final edit, so a late progress edit cannot
    overwrite the result.
    """

    def __init__(self, interaction: discord.Interaction) -> None:
        super().__init__(self._show, interval=MIN_EDIT_INTERVAL_SECONDS, name="motif-progress")
        self._interaction = interaction
        self._shown: str | None = None

    def update(self, event: ProgressEvent) -> None:
        self.put(describe(event))

    async def _show(self, text: str) -> None:
        if text == self._shown:
            return
        try:
            await self._interaction.edit_original_response(content=text)
            self._shown = text
        except discord.HTTPException:
            log.debug("progress edit failed", exc_info=True)
