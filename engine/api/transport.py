"""How messages (bytes encoded by engine.api.schema) travel between the client and an engine.

The client sees only `Transport`: open it, send and receive messages as bytes, close or kill
it; what they say is engine.api.schema's business, so a transport only carries them. The
embedded backend, `SubprocessTransport`, starts `python -m engine serve` and talks to it over a
socket pair the child inherits: no port, no path, no authkey, and the socket reaches EOF the
moment the engine dies, which is how a crash is noticed. On the socket each message is a frame:
its length (4 bytes, big-endian), then its bytes; asyncio streams read them here and a
blocking socket in the engine (`SocketChannel`). The Redis job queue's backend
(engine.api.queue_transport) is another `Transport`, carrying the same bytes.
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import struct
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from engine.api.child_env import child_environment

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_CHUNK = 1 << 16
# Results hold every candidate's OGG: a few MB; this bounds what a broken peer can make us buffer.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
# The engine's main thread wakes this often while idle, to run signal handlers (SIGTERM).
SIGNAL_POLL_SECONDS = 0.5


class TransportClosed(ConnectionError):
    """The other side went away (the engine exited or the channel was closed)."""


_LENGTH = struct.Struct(">I")  # a frame's header: how many bytes of message follow


def frame(message: bytes) -> bytes:
    if len(message) > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"a message may hold at most {MAX_MESSAGE_BYTES} bytes (received {len(message)})"
        )
    return _LENGTH.pack(len(message)) + message


class FrameReader:
    """Cuts a byte stream of frames into messages (the socket pair, a fine-tune child's pipe)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> bytes | None:
        """The next whole message, or None until more bytes come; ValueError when the header
        announces more than MAX_MESSAGE_BYTES (a broken peer: the stream cannot go on)."""
        if len(self._buffer) < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack_from(self._buffer)
        if length > MAX_MESSAGE_BYTES:
            raise ValueError(f"a frame announces {length} bytes, over {MAX_MESSAGE_BYTES}")
        end = _LENGTH.size + length
        if len(self._buffer) < end:
            return None
        message = bytes(self._buffer[_LENGTH.size : end])
        del self._buffer[:end]
        return message


class Transport(ABC):
    """An async, message-oriented channel to one engine."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def send(self, message: bytes) -> None: ...

    @abstractmethod
    async def receive(self) -> bytes:
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

    def hand_over(self, job_id: int, note: bytes) -> None:  # noqa: B027 (optional: no-op)
        """Keep `note` with job `job_id` (sent next) for the client's successor, should the
        client's process die before the reply: only a backend whose jobs outlive the
        process (the queue) can; the subprocess' jobs die with it."""


async def open_until_ready(
    transport: Transport, timeout: float, read_hello: Callable[[bytes], T], stop_timeout: float
) -> T:
    """Open `transport` and read the engine's first message with `read_hello` (which raises
    unless it says the engine is ready). On any failure, cancellation included, the process is
    killed and reaped before the exception goes on: a start that fails leaves nothing behind."""
    try:
        await transport.open()
        return read_hello(await asyncio.wait_for(transport.receive(), timeout))
    except BaseException:
        transport.kill()
        await transport.close(stop_timeout)
        raise


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
        self._frames = FrameReader()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    async def open(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv,
                "--fd",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                env=self._env,
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C meant for the bot must not kill the engine before
                # the bot has drained it; the engine still stops when the bot dies (EOF).
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # only the child may hold it, or its death would not reach EOF
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)

    async def send(self, message: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise TransportClosed("the engine channel is closed")
        try:
            self._writer.write(frame(message))
            await self._writer.drain()
        except (ConnectionError, BrokenPipeError) as exc:
            raise TransportClosed(f"the engine channel broke: {exc}") from exc

    async def receive(self) -> bytes:
        assert self._reader is not None, "open() first"
        while True:
            try:
                message = self._frames.next()
            except ValueError as exc:
                raise TransportClosed(f"the engine sent malformed data: {exc}") from exc
            if message is not None:
                return message
            try:
                data = await self._reader.read(READ_CHUNK)
            except ConnectionError as exc:
                raise TransportClosed(f"the engine channel broke: {exc}") from exc
            if not data:
                raise TransportClosed("the engine closed its channel")
            self._frames.feed(data)

    async def close(self, timeout: float) -> None:
        # EOF on its socket is the engine's signal to stop; it exits by itself.
        if self._writer is not None and not self._writer.is_closing():
            self._writer.close()
        if self._proc is None:
            return
        try:
            await asyncio.wait_for(self._proc.wait(), timeout)
        except TimeoutError:
            log.warning(
                "engine pid %s did not exit within %.0f s; killing it", self._proc.pid, timeout
            )
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
                log.warning("engine pid %s closed its channel but is still running", self._proc.pid)


class SocketChannel:
    """The engine's end: blocking frames over a socket; send() may be called from any thread."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._frames = FrameReader()
        self._send_lock = threading.Lock()

    @classmethod
    def from_fd(cls, fd: int) -> SocketChannel:
        return cls(socket.socket(fileno=fd))

    def receive(self) -> bytes | None:
        """The next message, or None at EOF or on a broken frame (the stream cannot be
        resynchronised: the client will start a new engine)."""
        while True:
            try:
                message = self._frames.next()
            except ValueError as exc:
                log.error("malformed data on the channel, closing it: %s", exc)
                return None
            if message is not None:
                return message
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
            self._frames.feed(data)

    def send(self, message: bytes) -> None:
        data = frame(message)
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError as exc:
                # The client is gone: nobody to tell; receive() sees EOF and the engine stops.
                log.warning("could not send a message of %d bytes: %s", len(message), exc)

    def shutdown(self) -> None:
        """Wake a blocked receive() with EOF (used to stop the engine from a worker thread)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            log.debug("socket already shut down: %s", exc)

    def close(self) -> None:
        self._sock.close()
