"""/seed add|list|play|remove."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cogs.seeds._cog import SeedsCog

if TYPE_CHECKING:
    from bot.app import MotifBot


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(SeedsCog(bot))
