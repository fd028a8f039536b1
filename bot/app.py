"""The bot class: wires the database, the engine client and the persistent buttons once.

    from bot import create_bot, Settings
    bot = create_bot(Settings.from_env())   # not connected; bot.run(token) or a test drives it

The database must already be migrated (`python -m bot` does it before building the bot).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import discord_api, errors
from bot.config import Settings
from bot.db import create_engine, create_sessionmaker
from bot.lifecycle import FAIL_SECONDS, Lifecycle
from bot.metrics import Metrics
from bot.services.engine_port import Engine
from bot.services.handover import handover_owner
from bot.services.limits import EngineWorkLimits, WorkSlots
from bot.services.tuning.runner import FinetuneRunner

if TYPE_CHECKING:
    from bot.services.adoption import Adoption

log = logging.getLogger(__name__)

# The cogs, loaded by name: nothing imports them (docs/architecture.md).
EXTENSIONS = (
    "bot.cogs.compose",
    "bot.cogs.composition_buttons",
    "bot.cogs.votes",
    "bot.cogs.seeds",
    "bot.cogs.top",
    "bot.cogs.pieces",
    "bot.cogs.tuning",
    "bot.cogs.jams",
)


class MotifTree(app_commands.CommandTree):
    """Every slash command's error goes to the one place that maps errors to messages."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        await errors.report(interaction, error)


class MotifBot(commands.Bot):
    """Slash commands and buttons only: no message content, no privileged intents."""

    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    engine: Engine
    tuning: FinetuneRunner

    def __init__(
        self, settings: Settings, *, engine: Engine | None = None, start_engine: bool = True
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channels and permissions of the servers the bot is in
        # Motif never joins a voice channel: discord.py's start-up warnings about the voice
        # libraries (PyNaCl, davey) it lacks would only worry operators. These class flags are
        # discord.py's own switch for them.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            help_command=None,
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=MotifTree,
            **_shard_options(settings),
        )
        self.settings = settings
        self.limits = work_limits(settings)
        # An engine passed in belongs to the caller (tests share one across bots); otherwise
        # setup_hook starts the embedded one and close() stops it.
        self._given_engine = engine
        # `python -m bot sync` only needs the command definitions, not a music engine.
        self._start_engine = start_engine
        self._engine_context: AbstractAsyncContextManager[Engine] | None = None
        # With MOTIF_QUEUE_URL: the jobs a process of ours left when it died (bot.cogs.compose
        # posts their results).
        self.adoption: Adoption | None = None
        self._db_ready = False
        # Stopping (SIGTERM, Ctrl-C) drains instead of dropping work: see bot.lifecycle.
        self.lifecycle = Lifecycle(self, grace_seconds=settings.shutdown_grace_seconds)
        self.lifecycle.install_gate()
        self.metrics = Metrics(in_flight=lambda: self.lifecycle.in_flight)
        if settings.discord_api_base is not None:
            discord_api.use_api_base(settings.discord_api_base)

    async def setup_hook(self) -> None:
        if self.settings.discord_api_base is not None:
            await discord_api.use_api_gateway(self.http)
        self.db = create_engine(
            self.settings.database_url, sqlite_busy_timeout_ms=self.settings.sqlite_busy_timeout_ms
        )
        self.sessions = create_sessionmaker(self.db)
        self._db_ready = True
        self.tuning = FinetuneRunner(self)
        if self._given_engine is not None:
            self.engine = self._given_engine
        elif self._start_engine:
            self._engine_context = open_engine(self.settings)
            self.engine = await self._engine_context.__aenter__()
            if self.settings.queue_url is not None:
                from bot.services.adoption import Adoption
                from engine.api.queue_handover import QueueHandover  # redis-py: queue only

                owner = handover_owner(self.settings)
                handover = QueueHandover(self.settings.queue_url, owner=owner)
                self.adoption = Adoption(handover, draining=lambda: self.lifecycle.draining)
        if self._given_engine is not None or self._start_engine:
            # Only a bot that will run jobs: `sync` must not touch the runs of a running bot.
            await self.tuning.recover()
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.adoption is not None:  # its cogs have registered what they post
            self.adoption.start()

    async def close(self) -> None:
        try:
            # While Discord stays connected (results are posted, newcomers told "restarting"):
            # compositions in flight get the grace (bot.lifecycle) while fine-tuning runs stop
            # (they take minutes) and are recorded as interrupted. Then our engine stops.
            await asyncio.gather(self.lifecycle.drain(), self._stop_tuning())
            if self.adoption is not None:
                await self.adoption.aclose()
            await self._stop_engine()
            await self.lifecycle.finish()
            await super().close()
        finally:
            await self.limits.aclose()
            if self.adoption is not None:
                await self.adoption.handover.aclose()
            if self._db_ready:
                self._db_ready = False
                await self.db.dispose()

    async def _stop_tuning(self) -> None:
        if self._db_ready:
            await self.tuning.close()

    async def _stop_engine(self) -> None:
        if self._engine_context is not None:
            context, self._engine_context = self._engine_context, None
            await context.__aexit__(None, None, None)

    async def on_ready(self) -> None:
        log.info("connected as %s to %d servers", self.user, len(self.guilds))


class ShardedMotifBot(MotifBot, commands.AutoShardedBot):
    """MOTIF_SHARD_COUNT: discord.py's AutoShardedBot runs this process' shards (all of them,
    or MOTIF_SHARD_IDS). Nothing else changes: what the processes share (cooldowns, caps,
    jobs in flight) is in Redis, the rest in the database."""


def _shard_options(settings: Settings) -> dict[str, Any]:
    if not settings.sharded:
        return {}
    ids = settings.shard_ids
    return {"shard_count": settings.shard_count, "shard_ids": list(ids) if ids else None}


def work_limits(settings: Settings) -> WorkSlots:
    """The cooldown and cap: with MOTIF_QUEUE_URL in its Redis, shared by every bot process
    (shards); otherwise in this process."""
    cooldown = settings.compose_cooldown_seconds
    cap = settings.max_inflight_per_guild
    if settings.queue_url is not None:
        from bot.services.shared_limits import SharedWorkLimits  # redis-py: queue users only

        return SharedWorkLimits(
            settings.queue_url, cooldown_seconds=cooldown, max_inflight_per_guild=cap
        )
    return EngineWorkLimits(cooldown_seconds=cooldown, max_inflight_per_guild=cap)


def open_engine(settings: Settings) -> AbstractAsyncContextManager[Engine]:
    """The engine: with MOTIF_QUEUE_URL, the workers of that Redis job queue; otherwise the
    embedded one, a subprocess the client starts, watches and restarts."""
    # Imported on use: only a bot that starts its own engine needs the client and transport.
    # The bot closes its engine after its drain (bot.lifecycle) has spent the grace on the
    # compositions: what is left then (a seed preview, a piece export) gets a few seconds.
    if settings.queue_url is not None:
        from engine.api.queue_transport import queue_client

        return queue_client(
            settings.queue_url, owner=handover_owner(settings), close_timeout=FAIL_SECONDS
        )
    from engine.api.client import EngineClient

    # The engine's variables as the bot checked them (data dir absolute: the engine keeps the
    # servers' checkpoints and the corpus it replays there).
    return EngineClient.local(env=settings.engine.to_env(), close_timeout=FAIL_SECONDS)


def create_bot(
    settings: Settings, *, engine: Engine | None = None, start_engine: bool = True
) -> MotifBot:
    """The bot, not connected. `engine`: an already open engine client to use (and not close);
    `start_engine=False`: no engine at all (for syncing commands)."""
    kind = ShardedMotifBot if settings.sharded else MotifBot
    return kind(settings, engine=engine, start_engine=start_engine)
