"""The operator's endpoint, served by the bot process on its own event loop (aiohttp):

    GET /healthz   200 while the process answers (liveness)
    GET /readyz    200 when the gateway is connected, the database answers and the engine is
                   up; 503 otherwise, and 503 while draining (readiness); JSON says which
    GET /metrics   Prometheus' text format (bot.metrics), the engine's figures read now

Off unless MOTIF_METRICS_PORT is set; it listens on MOTIF_METRICS_HOST (127.0.0.1 by
default: metrics and health are for the machine's own agents unless the operator says so).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from aiohttp import web
from sqlalchemy import text

from bot.metrics import CONTENT_TYPE
from bot.services.engine_port import Engine, EngineStats

if TYPE_CHECKING:
    from bot.app import MotifBot

log = logging.getLogger(__name__)

# A check that takes longer than this counts as failed: probes have short timeouts of their own.
CHECK_SECONDS = 2.0


class OpsServer:
    def __init__(self, bot: MotifBot, *, host: str, port: int) -> None:
        self._bot = bot
        self.host, self.port = host, port
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)

    @classmethod
    def from_settings(cls, bot: MotifBot) -> OpsServer | None:
        settings = bot.settings
        if settings.metrics_port is None:
            return None
        return cls(bot, host=settings.metrics_host, port=settings.metrics_port)

    async def start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info(
            "health and metrics on http://%s:%d/ (healthz, readyz, metrics)", self.host, self.port
        )

    async def stop(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def _readyz(self, request: web.Request) -> web.Response:
        draining = self._bot.lifecycle.draining
        stats = None if draining else await self._engine_stats()
        checks = {
            "gateway": self._gateway_connected(),
            "database": not draining and await self._database_answers(),
            "engine": stats is not None and not stats.draining,
        }
        ready = not draining and all(checks.values())
        body = {"ready": ready, "draining": draining, "checks": checks}
        return web.json_response(body, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        stats = None if self._bot.lifecycle.draining else await self._engine_stats()
        engine = self._engine()
        metrics = self._bot.metrics
        metrics.observe_engine(stats, restarts=engine.restarts if engine is not None else 0)
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    def _engine(self) -> Engine | None:
        """The bot's engine, once setup_hook has made it."""
        engine: Engine | None = getattr(self._bot, "engine", None)
        return engine

    def _gateway_connected(self) -> bool:
        bot = self._bot
        if not bot.is_ready() or bot.is_closed():
            return False
        if isinstance(bot, discord.AutoShardedClient):  # MOTIF_SHARD_COUNT: every shard of ours
            shards = bot.shards.values()
            return bool(shards) and not any(shard.is_closed() for shard in shards)
        return bot.ws is not None and bot.ws.open

    async def _database_answers(self) -> bool:
        sessions = getattr(self._bot, "sessions", None)
        if sessions is None:
            return False
        try:
            async with asyncio.timeout(CHECK_SECONDS), sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not ready"; logged for the operator
            log.warning("readiness: the database did not answer", exc_info=True)
            return False
        return True

    async def _engine_stats(self) -> EngineStats | None:
        engine = self._engine()
        if engine is None:
            return None
        try:
            return await engine.stats(timeout=CHECK_SECONDS)
        except Exception:  # noqa: BLE001 - down, restarting or closing: "not ready"
            log.debug("the engine did not answer a stats ping", exc_info=True)
            return None
