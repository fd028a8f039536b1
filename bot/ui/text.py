"""Members' own text (file names, seed names) as the bot's messages may show it."""

from __future__ import annotations

import discord


def escaped(text: str) -> str:
    """No markdown and no mentions: a file called "**@everyone**.mid" shows as it is named."""
    return discord.utils.escape_markdown(discord.utils.escape_mentions(text))


def shortened(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
