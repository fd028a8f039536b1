"""/piece export."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cogs.pieces._cog import PiecesCog

if TYPE_CHECKING:
    from bot.app import MotifBot


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(PiecesCog(bot))
