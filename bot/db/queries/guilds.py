"""A server as a whole."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Guild
from bot.db.queries._tx import check_snowflake, writing


async def forget_guild(session: AsyncSession, *, guild_id: int) -> bool:
    """Delete everything of the server (seeds, compositions, votes, model versions, runs),
    as when it removes the bot. Returns whether there was anything. Checkpoint files on
    disk are the caller's to delete (list_model_versions first for their paths)."""
    check_snowflake("guild_id", guild_id)
    async with writing(session):
        result = await session.execute(delete(Guild).where(Guild.id == guild_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]
