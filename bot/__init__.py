"""Motif: a Discord bot with which a server's members compose music together.

Import-light on purpose: importing `bot` pulls in neither discord.py nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config import Settings

if TYPE_CHECKING:
    from bot.app import MotifBot

__all__ = ["Settings", "create_bot"]


def create_bot(settings: Settings, **kwargs: object) -> MotifBot:
    """The Discord bot, built but not connected (see bot.app.create_bot)."""
    # Imported on call: `import bot` stays light for the db commands.
    from bot.app import create_bot as _create_bot

    return _create_bot(settings, **kwargs)  # type: ignore[arg-type]
