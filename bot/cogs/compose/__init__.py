"""/compose and the composition's buttons (continue, reroll, MIDI, save as seed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cogs.compose._buttons import BUTTONS
from bot.cogs.compose._cog import ComposeCog

if TYPE_CHECKING:
    from bot.app import MotifBot


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(ComposeCog(bot))
    bot.add_dynamic_items(*BUTTONS)
