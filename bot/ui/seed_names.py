"""The seed-name choices Discord offers as a member types (/compose saved_seed, /seed play)."""

from __future__ import annotations

from discord import app_commands
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import autocomplete_seed_names


async def saved_seed_names(
    sessions: async_sessionmaker[AsyncSession], guild_id: int | None, current: str
) -> list[app_commands.Choice[str]]:
    """This server's seeds starting with what the member typed (never another server's)."""
    if guild_id is None:
        return []
    async with sessions() as session:
        names = await autocomplete_seed_names(session, guild_id=guild_id, prefix=current)
    return [app_commands.Choice(name=name, value=name) for name in names]
