"""Motif: a Discord bot with which a server's members compose music together.

Import-light on purpose: importing `bot` pulls in neither discord.py nor torch.
"""

from __future__ import annotations

from bot.config import Settings

__all__ = ["Settings"]
