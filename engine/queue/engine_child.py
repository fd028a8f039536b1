"""The engine process a worker owns: `python -m engine serve`, as the bot's embedded engine is
started (engine.api.transport.SubprocessTransport), driven by the same messages.

That message channel is the whole interface between a worker and the engine: send a job
message, get its progress and its reply back. So how the engine serves (threads, scheduler,
continuous batching) can change without the worker knowing. The messages are engine.api.schema's
MessagePack maps; they are handled here as plain maps (only their type, id and a few fields are
read), so a worker does not depend on the rest of their shape. This class only adds what a
worker needs around it: starting and waiting for `ready`, answering pings, telling when the
process is gone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import msgspec

from engine.api.transport import SubprocessTransport, TransportClosed, open_until_ready

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 120.0  # importing torch, loading the model and the soundfont, warming up
STOP_TIMEOUT = 10.0

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]


def unpack(data: bytes) -> dict[str, Any]:
    """An engine message as a plain map; TransportClosed when it is not one (a broken
    engine: its channel cannot be trusted any more)."""
    try:
        message = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as exc:
        raise TransportClosed(f"the engine sent a message that is not MessagePack: {exc}") from exc
    if not isinstance(message, dict):
        raise TransportClosed(f"the engine sent a {type(message).__name__}, not a map")
    return message


class EngineStartFailed(RuntimeError):
    """The engine process did not come up (the message says why)."""


class EngineChild:
    """One engine process at a time; `start()` again after it ended starts a new one."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        on_message: MessageHandler,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self._argv = list(argv)
        self._env = dict(env)
        self._on_message = on_message
        self._startup_timeout = startup_timeout
        self._transport: SubprocessTransport | None = None
        self._reader: asyncio.Task[str] | None = None
        self._pings: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)  # ping ids; job ids are the worker's (kept apart below)
        self._send_lock = asyncio.Lock()
        self.generation = 0  # bumped at every start: which process a job was sent to
        self.info: dict[str, Any] = {}  # the engine's ready message

    @property
    def pid(self) -> int | None:
        return self._transport.pid if self._transport is not None else None

    async def start(self) -> dict[str, Any]:
        """Start a process and wait until it serves; its first stats (max_rows...)."""
        transport = SubprocessTransport(self._argv, env=self._env)
        try:
            hello = await open_until_ready(transport, self._startup_timeout, _ready, STOP_TIMEOUT)
        except (OSError, TimeoutError, TransportClosed) as exc:
            raise EngineStartFailed(f"{exc} ({transport.describe_exit()})") from exc
        self._transport = transport
        self.generation += 1
        self.info = hello
        self._reader = asyncio.create_task(self._read(transport), name="engine-reader")
        try:
            stats = await self.ping(self._startup_timeout)
        except (TimeoutError, TransportClosed) as exc:
            self.kill()
            await self.wait_ended()
            raise EngineStartFailed(f"the engine did not answer its first ping ({exc})") from exc
        log.info(
            "engine pid %s ready on %s (%s rows)",
            hello.get("pid"),
            hello.get("device"),
            stats.get("max_rows"),
        )
        return stats

    async def send(self, message: dict[str, Any]) -> None:
        """TransportClosed when the process is gone (or not started)."""
        if self._transport is None:
            raise TransportClosed("the engine is not running")
        async with self._send_lock:
            await self._transport.send(msgspec.msgpack.encode(message))

    async def ping(self, timeout: float) -> dict[str, Any]:
        """The engine's stats; TimeoutError, or TransportClosed when it is gone."""
        ping_id = -next(self._ids)  # negative: never one of the worker's job ids
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = future
        try:
            await self.send({"type": "ping", "id": ping_id})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pings.pop(ping_id, None)

    async def wait_ended(self) -> str:
        """Wait until the running process has gone; why it went (for logs)."""
        if self._reader is None:
            return "not started"
        return await asyncio.shield(self._reader)

    def kill(self) -> None:
        if self._transport is not None:
            self._transport.kill()

    async def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the process (EOF on its channel; killed if still there after `timeout`)."""
        transport = self._transport
        if transport is not None:
            await transport.close(timeout)
        if self._reader is not None:
            await asyncio.wait([self._reader])

    async def _read(self, transport: SubprocessTransport) -> str:
        while True:
            try:
                message = unpack(await transport.receive())
            except TransportClosed as exc:
                closed = str(exc)
                break
            if message.get("type") == "pong":
                future = self._pings.get(message.get("id"))  # type: ignore[arg-type]
                if future is not None and not future.done():
                    future.set_result(dict(message.get("stats") or {}))
                continue
            try:
                await self._on_message(message)
            except Exception:
                log.exception("could not handle a %r message from the engine", message.get("type"))
        await transport.wait_exit(STOP_TIMEOUT)
        for future in self._pings.values():
            if not future.done():
                future.set_exception(TransportClosed("the engine went away"))
        self._transport = None
        return f"{closed}; {transport.describe_exit()}"


def _ready(data: bytes) -> dict[str, Any]:
    hello = unpack(data)
    if hello.get("type") != "ready":
        raise TransportClosed(f"the engine said {hello.get('type')!r} instead of ready")
    return hello
