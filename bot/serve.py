"""How `python -m bot` serves: connect, answer SIGTERM or SIGINT with a drain (bot.lifecycle),
serve the operator's endpoint (bot.health) meanwhile, and exit with a status."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import suppress
from typing import TYPE_CHECKING

import discord

from bot.health import OpsServer
from bot.lifecycle import STOP_SIGNALS

if TYPE_CHECKING:
    from bot.app import MotifBot

log = logging.getLogger("bot.lifecycle")  # the drain's own story, in one logger


def run(bot: MotifBot, token: str) -> int:
    """Connect and serve until SIGTERM or SIGINT, then drain and close; the exit status."""
    try:
        return asyncio.run(_serve(bot, token))
    except discord.LoginFailure as exc:
        log.error("Discord refused the token in DISCORD_TOKEN: %s", exc)
        return 2
    except Exception:
        # Through logging, so that a JSON log keeps one object per line, traceback included.
        log.exception("the bot stopped on an error")
        return 1


async def _serve(bot: MotifBot, token: str) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(received: signal.Signals) -> None:
        log.info(
            "%s: stopping (draining for up to %.0f s; send it again to stop at once)",
            received.name,
            bot.lifecycle.grace_seconds,
        )
        for stop_signal in STOP_SIGNALS:
            loop.remove_signal_handler(stop_signal)
            signal.signal(stop_signal, signal.SIG_DFL)  # SIGINT too: no KeyboardInterrupt
        stop.set()

    for stop_signal in STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, on_signal, stop_signal)
    ops = OpsServer.from_settings(bot)
    async with bot:
        if ops is not None:
            await ops.start()
        try:
            connection = asyncio.create_task(bot.start(token), name="motif-gateway")
            bot.lifecycle.reading_gateway(connection)
            stopping = asyncio.create_task(stop.wait(), name="motif-stop-signal")
            await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                stopping.cancel()
                await connection  # raises why it ended (a refused token, ...)
                return 0
            await bot.close()
            with suppress(asyncio.CancelledError):
                await connection
        finally:
            if ops is not None:
                await ops.stop()
    log.info("stopped")
    return 0
