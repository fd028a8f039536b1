"""DISCORD_API_BASE: reach Discord through another address (an API proxy, a test stand-in).

discord.py builds every REST call, webhook and interaction answers included, on
`discord.http.Route.BASE`; a bot that is not sharded connects to a fixed gateway URL. With a
base set, the gateway is the one that API names in GET /gateway/bot, as sharded bots
already do, so the one setting moves both.
"""

from __future__ import annotations

import logging

import discord
import yarl
from discord.gateway import DiscordWebSocket

log = logging.getLogger(__name__)


def use_api_base(base: str) -> None:
    """Send every REST call to `base` (e.g. http://proxy:8080/api/v10)."""
    discord.http.Route.BASE = base


async def use_api_gateway(http: discord.http.HTTPClient) -> None:
    """Connect to the gateway the API at Route.BASE names (call once logged in)."""
    _, url, _ = await http.get_bot_gateway()
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(url)
    log.info("Discord API at %s, gateway at %s", discord.http.Route.BASE, url)
