"""How messages (dicts, see engine.api.protocol) travel between the client and an engine.

The client sees only `Transport`: open it, send and receive dicts, close or kill it. The
embedded backend, `SubprocessTransport`, starts `python -m engine serve` and talks to it over a
socket pair the child inherits: no port, no path, no authkey, and the socket reaches EOF the
moment the engine dies, which is how a crash is noticed. Framing is msgpack's own (objects are
self-delimiting), fed by asyncio streams here and by a blocking socket in the engine
(`SocketChannel`). A Redis job-queue backend would be another `Transport`.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack

from engine.api.child_env import child_environment

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 16
# Results hold every candidate's OGG: a few MB; this bounds what a broken peer can make us buffer.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
# The engine's main thread wakes this often while idle, to run signal handlers (SIGTERM).
SIGNAL_POLL_SECONDS = 0.5


class TransportClosed(ConnectionError):
    """The other side went away (the engine exited or the channel was closed)."""


def _unpacker() -> msgpack.Unpacker:
    # Maps with non-string keys are let through to be refused as bad requests, not as a
    # broken stream (which would end the channel).
    return msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=MAX_MESSAGE_BYTES)


class Transport(ABC):
    """An async, message-oriented channel to one engine."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def send(self, message: dict[str, Any]) -> None: ...

    @abstractmethod
    async def receive(self) -> dict[str, Any]:
        """The next message; raises TransportClosed when the engine is gone."""

    @abstractmethod
    async def close(self, timeout: float) -> None:
        """Ask the engine to stop (it finishes nothing: callers drain jobs first)."""

    @abstractmethod
    def kill(self) -> None:
        """Stop the engine now (it hangs); receive() then raises TransportClosed."""

    @abstractmethod
    def describe_exit(self) -> str:
        """Why the engine went away, for logs (e.g. 'killed by signal 9')."""

    async def wait_exit(self, timeout: float) -> None:  # noqa: B027 (optional: no-op default)
        """Give an engine whose channel closed a moment to exit, so describe_exit() knows."""


class SubprocessTransport(Transport):
    """`python -m engine serve --fd N` as a child process; the socket pair is the channel.

    `env` is the child's whole environment; by default the allowed part of ours
    (engine.api.child_env: the bot's secrets stay in the bot)."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> None:
        self._argv = list(argv)
        self._env = dict(env) if env is not None else child_environment()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._unpacker = _unpacker()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def open(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv, "--fd", str(theirs.fileno()), pass_fds=(theirs.fileno(),),
                env=self._env, stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C meant for the bot must not kill the engine before
                # the bot has drained it; the engine still stops when the bot dies (EOF).
                start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # only the child may hold it, or its death would not reach EOF
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)

    async def send(self, message: dict[str, Any]) -> None:
        if self._writer is None or self._writer.is_closing():
            raise TransportClosed("the engine channel is closed")
        try:
            self._writer.write(msgpack.packb(message, use_bin_type=True))
            await self._writer.drain()
        except (ConnectionError, BrokenPipeError) as exc:
            raise TransportClosed(f"the engine channel broke: {exc}") from exc

    async def receive(self) -> dict[str, Any]:
        assert self._reader is not None, "open() first"
        while True:
            try:
                for message in self._unpacker:
                    return message
            except (ValueError, msgpack.UnpackException) as exc:
                raise TransportClosed(f"the engine sent malformed data: {exc}") from exc
            try:
                data = await self._reader.read(READ_CHUNK)
            except ConnectionError as exc:
                raise TransportClosed(f"the engine channel broke: {exc}") from exc
            if not data:
                raise TransportClosed("the engine closed its channel")
            self._unpacker.feed(data)

    async def close(self, timeout: float) -> None:
        # EOF on its socket is the engine's signal to stop; it exits by itself.
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
        if self._proc is None:
            return
        try:
            await asyncio.wait_for(self._proc.wait(), timeout)
        except TimeoutError:
            log.warning("engine pid %s did not exit within %.0f s; killing it",
                        self._proc.pid, timeout)
            self.kill()
            await self._proc.wait()

    def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    def describe_exit(self) -> str:
        code = self._proc.returncode if self._proc else None
        if code is None:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exited with code {code}"

    async def wait_exit(self, timeout: float) -> None:
        if self._proc is not None:
            try:
                await asyncio.wait_for(self._proc.wait(), timeout)
            except TimeoutError:
                log.warning("engine pid %s closed its channel but is still running",
                            self._proc.pid)


class SocketChannel:
    """The engine's end: blocking msgpack over a socket; send() may be called from any thread."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._unpacker = _unpacker()
        self._send_lock = threading.Lock()

    @classmethod
    def from_fd(cls, fd: int) -> SocketChannel:
        return cls(socket.socket(fileno=fd))

    def receive(self) -> object | None:
        """The next message (any msgpack value), or None at EOF or on bytes that are not
        msgpack (the stream cannot be resynchronised: the client will start a new engine)."""
        while True:
            try:
                for message in self._unpacker:
                    return message
            except (ValueError, msgpack.UnpackException) as exc:
                log.error("malformed data on the channel, closing it: %s", exc)
                return None
            try:
                # Waiting in select with a timeout, not in recv, lets the main thread run a
                # signal handler even when the signal was delivered to another thread.
                while not select.select([self._sock], [], [], SIGNAL_POLL_SECONDS)[0]:
                    pass
                data = self._sock.recv(READ_CHUNK)
            except (OSError, ValueError):  # shut down by shutdown() from another thread
                return None
            if not data:
                return None
            self._unpacker.feed(data)

    def send(self, message: dict[str, Any]) -> None:
        data = msgpack.packb(message, use_bin_type=True)
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError as exc:
                # The client is gone: nobody to tell; receive() sees EOF and the engine stops.
                log.warning("could not send %s message: %s", message.get("type"), exc)

    def shutdown(self) -> None:
        """Wake a blocked receive() with EOF (used to stop the engine from a worker thread)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            log.debug("socket already shut down: %s", exc)

    def close(self) -> None:
        self._sock.close()
