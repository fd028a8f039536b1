"""/finetune start|status|cancel and /model info|rollback; the runs in the background."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.cogs.tuning._cog import TuningCog
from bot.cogs.tuning._runner import FinetuneRunner

if TYPE_CHECKING:
    from bot.app import MotifBot

__all__ = ["FinetuneRunner", "TuningCog", "setup"]


async def setup(bot: MotifBot) -> None:
    await bot.add_cog(TuningCog(bot))
