"""What the fine-tuning runs need of the bot, as a Protocol: bot.app.MotifBot is one, and the
runs never import it (app -> services, and no way back)."""

from __future__ import annotations

from typing import Protocol

import discord
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.services.engine_port import Engine


class RunCounter(Protocol):
    def finetune(self, outcome: str) -> None:
        """Count a run that started or ended (bot.metrics.Metrics.finetune)."""
        ...


class TuningHost(Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def metrics(self) -> RunCounter: ...

    def get_partial_messageable(
        self, id: int, *, guild_id: int | None = None, type: discord.ChannelType | None = None
    ) -> discord.PartialMessageable:
        """Where a run's start and outcome are announced (discord.Client's own)."""
        ...
