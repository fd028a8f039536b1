"""The bot's side of the engine (light: no torch, so the bot's process stays small).

    async with EngineClient.local() as engine:
        result = await engine.compose(ComposeRequest(seed_midi=data, bars=8), on_progress=show)

`render(midi)` turns a whole MIDI file into OGG (seed previews, parts of piece exports).
`finetune(request)` tunes a server's model in the background of the engine (minutes), with
FinetuneProgress events; cancelling the awaiting task stops the run.
`local()` starts `python -m engine serve` as a subprocess and watches it. When the engine dies,
a supervisor task restarts it with backoff and sends each in-flight job again, once; a job
whose engine died twice, or that no restart could reach, fails with EngineUnavailable. A
task cancelled while awaiting `compose` tells the engine, which frees the job's batch rows.
Everything here talks to a `Transport` (engine.api.transport), so other backends fit behind it.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

from engine.api.child_env import child_environment
from engine.api.errors import BadRequest, BadSeed, EngineError, EngineUnavailable
from engine.api.schema import (
    AnyResult,
    CancelCommand,
    CandidateResult,
    ComposeCommand,
    ComposeRequest,
    ComposeResult,
    Decoding,
    EngineRestarting,
    EngineStats,
    FinetuneCommand,
    FinetuneProgress,
    FinetuneRequest,
    FinetuneResult,
    FromEngine,
    JobDone,
    JobFailed,
    JobProgress,
    PingCommand,
    Pong,
    ProgressEvent,
    Queued,
    Ready,
    RenderCommand,
    Rendering,
    RenderRequest,
    RenderResult,
    ToEngine,
    VotedPair,
    decode_from_engine,
    encode,
    job_id_of,
)
from engine.api.transport import (
    SubprocessTransport,
    Transport,
    TransportClosed,
    open_until_ready,
)

__all__ = [
    "BadRequest",
    "BadSeed",
    "CandidateResult",
    "ComposeRequest",
    "ComposeResult",
    "Decoding",
    "EngineClient",
    "EngineError",
    "EngineRestarting",
    "EngineStats",
    "EngineUnavailable",
    "FinetuneProgress",
    "FinetuneRequest",
    "FinetuneResult",
    "ProgressEvent",
    "Queued",
    "RenderRequest",
    "RenderResult",
    "Rendering",
    "VotedPair",
]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a job is sent to at most two engines: the one that died and its successor
RESTART_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds before each restart of a dead engine
DOWN_RETRY_SECONDS = 30.0  # once those are spent, keep trying this often in the background
STARTUP_TIMEOUT = 120.0  # importing torch, loading the model and the soundfont, warming up
STOP_TIMEOUT = 10.0  # an engine told to stop that is still running after this is killed
HEARTBEAT_SECONDS = 10.0  # while jobs are in flight, the engine must answer a ping this often
CLOSE_TIMEOUT = 60.0  # closing lets the jobs in flight finish for this long, then fails them

ProgressCallback = Callable[[ProgressEvent], Awaitable[None] | None]
R = TypeVar("R", ComposeResult, RenderResult, FinetuneResult)


@dataclass(eq=False)
class _InFlight(Generic[R]):
    # Sent again as it is (same id) to the engine that replaces one that died.
    message: ComposeCommand | RenderCommand | FinetuneCommand
    expects: type[R]  # what its result must be
    future: asyncio.Future[R]
    attempts: int = 0
    sent_to: int | None = None  # generation of the engine the job was last sent to
    progress: ProgressEvent | None = None
    progress_changed: asyncio.Event = field(default_factory=asyncio.Event)
    handover: bytes | None = None  # for a successor process (Transport.hand_over)

    @property
    def id(self) -> int:
        return self.message.id


class EngineClient:
    def __init__(
        self,
        transport_factory: Callable[[], Transport],
        *,
        restart_delays: Sequence[float] = RESTART_DELAYS,
        startup_timeout: float = STARTUP_TIMEOUT,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self._new_transport = transport_factory
        self._restart_delays = tuple(restart_delays)
        self._startup_timeout = startup_timeout
        self._heartbeat = heartbeat_seconds
        self._close_timeout = close_timeout
        self._ids = itertools.count(1)
        self._jobs: dict[int, _InFlight[Any]] = {}
        self._pings: dict[int, asyncio.Future[EngineStats]] = {}
        self._transport: Transport | None = None
        self._generation = 0  # which engine is running: bumped at every (re)start
        self._up = asyncio.Event()
        self._down = False  # restarts failed: calls fail at once until one succeeds
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.engine_info: Ready | None = None  # the running engine's ready message

    @classmethod
    def local(
        cls,
        *,
        checkpoint: str | Path | None = None,
        device: str | None = None,
        max_rows: int | None = None,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> EngineClient:
        """A client of an engine subprocess (`python -m engine serve`) that it starts itself.

        checkpoint/device/max_rows default to the engine's environment (MOTIF_CHECKPOINT,
        MOTIF_DEVICE, MOTIF_MAX_ROWS); `options` go to EngineClient (restart delays, ...).
        The engine inherits only the allowed part of this process's environment (no
        DISCORD_TOKEN, no DATABASE_URL: engine.api.child_env), plus `env` as given.
        """
        argv = [python, "-m", "engine", "serve"]
        if checkpoint is not None:
            argv += ["--checkpoint", str(checkpoint)]
        if device is not None:
            argv += ["--device", device]
        if max_rows is not None:
            argv += ["--max-rows", str(max_rows)]
        environ = child_environment(env)
        return cls(lambda: SubprocessTransport(argv, env=environ), **options)

    async def __aenter__(self) -> EngineClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the engine and wait until it serves; EngineUnavailable if it cannot start."""
        if self._supervisor is not None:
            raise RuntimeError("the engine client is already started")
        transport = await self._launch()  # the first start fails fast: likely a config error
        self._supervisor = asyncio.create_task(self._supervise(transport), name="engine-supervisor")
        self._supervisor.add_done_callback(self._supervisor_ended)

    def _supervisor_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return  # aclose(), or the engine stopped while closing
        exc = task.exception()
        # A bug in this module: say so loudly and fail the jobs rather than leave them hanging.
        log.error("the engine supervisor stopped", exc_info=exc)
        self._down = True
        self._fail_all(EngineUnavailable("the music engine client failed; try again later"))

    @property
    def restarts(self) -> int:
        """How many times an engine that went away was replaced since start()."""
        return max(0, self._generation - 1)

    # Public calls.
    async def compose(
        self,
        request: ComposeRequest,
        *,
        on_progress: ProgressCallback | None = None,
        handover: bytes | None = None,
    ) -> ComposeResult:
        """Compose; BadSeed/BadRequest carry a message for the member who asked. `handover`:
        what the caller's successor needs to deliver the result should this process die
        first; a backend whose jobs outlive the process (the queue) keeps it for the job."""
        return await self._run(
            ComposeCommand(next(self._ids), request), ComposeResult, on_progress, handover
        )

    async def render(
        self,
        midi: bytes,
        *,
        max_audio_bytes: int | None = None,
        max_seconds: float | None = None,
        guild_id: int | None = None,
        pianoroll: bool = False,
        handover: bytes | None = None,
    ) -> RenderResult:
        """A whole MIDI file as OGG (seed previews, parts of piece exports): at most
        `max_seconds` (None: the engine's most, MOTIF_MAX_RENDER_SECONDS) of it, fitted
        into `max_audio_bytes`; the result says what was cut. BadRequest if the file is unfit.
        `guild_id`: whose turn it is among the engine's whole-file renders. `pianoroll`: also
        draw the whole file (result.pianoroll, PNG). `handover`: as for compose."""
        request = RenderRequest(
            midi,
            max_audio_bytes=max_audio_bytes,
            max_seconds=max_seconds,
            guild_id=guild_id,
            pianoroll=pianoroll,
        )
        return await self._run(
            RenderCommand(next(self._ids), request), RenderResult, None, handover
        )

    async def finetune(
        self, request: FinetuneRequest, *, on_progress: ProgressCallback | None = None
    ) -> FinetuneResult:
        """A new checkpoint for the server and the quality gate's verdict on it; BadRequest
        when the data cannot be used (the message says what is missing)."""
        return await self._run(
            FinetuneCommand(next(self._ids), request), FinetuneResult, on_progress
        )

    async def _run(
        self,
        message: ComposeCommand | RenderCommand | FinetuneCommand,
        expects: type[R],
        on_progress: ProgressCallback | None,
        handover: bytes | None = None,
    ) -> R:
        self._check_accepting()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        job = _InFlight(message, expects, future)
        job.handover = handover
        self._jobs[job.id] = job
        pump = (
            asyncio.create_task(
                self._pump_progress(job, on_progress), name=f"engine-progress-{job.id}"
            )
            if on_progress is not None
            else None
        )
        try:
            if self._up.is_set():
                await self._send_job(job)  # otherwise the supervisor sends it once up
            return await job.future
        except asyncio.CancelledError:
            if job.sent_to == self._generation and self._up.is_set():
                self._in_background(self._send(CancelCommand(job.id)), f"engine-cancel-{job.id}")
            raise
        finally:
            del self._jobs[job.id]
            if pump is not None:
                pump.cancel()

    async def stats(self, timeout: float = 10.0) -> EngineStats:
        """The engine's figures (rows in the batch, queue, ...); answered after earlier cancels.
        EngineUnavailable when the engine is not up, or does not answer, within `timeout`."""
        self._check_accepting()
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            raise EngineUnavailable(
                f"the music engine is restarting and was not back within {timeout:g} s"
            ) from None
        try:
            return await asyncio.wait_for(self._ping(), timeout)
        except TimeoutError:
            raise EngineUnavailable(
                f"the music engine did not answer within {timeout:g} s "
                "(it may be stuck; it is restarted if it stays so)"
            ) from None

    async def aclose(self, timeout: float | None = None) -> None:
        """Stop accepting jobs, let in-flight ones finish for up to `timeout` seconds (default:
        the client's close_timeout), fail the rest with EngineUnavailable, stop the engine."""
        if self._closing:
            return
        self._closing = True
        timeout = self._close_timeout if timeout is None else timeout
        pending = [job.future for job in self._jobs.values() if not job.future.done()]
        if pending:
            log.info("waiting up to %.0f s for %d compositions in flight", timeout, len(pending))
            await asyncio.wait(pending, timeout=timeout)
        self._fail_all(EngineUnavailable("the music engine is shutting down; try again soon"))
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.wait([self._supervisor])
        if self._transport is not None:
            await self._transport.close(STOP_TIMEOUT)
            self._transport = None
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(self._background)

    # Starting and watching the engine.
    async def _launch(self) -> Transport:
        transport = self._new_transport()
        try:
            hello = await open_until_ready(transport, self._startup_timeout, _ready, STOP_TIMEOUT)
        except (OSError, TimeoutError, TransportClosed, msgspec.MsgspecError) as exc:
            raise EngineUnavailable(
                f"the music engine could not start ({exc}; {transport.describe_exit()})"
            ) from exc
        self._generation += 1
        self._transport = transport
        self.engine_info = hello
        self._down = False
        self._up.set()
        log.info("engine pid %s ready on %s", hello.pid, hello.device)
        return transport

    async def _supervise(self, transport: Transport) -> None:
        while True:
            await self._resend()
            await self._serve(transport)  # returns when the engine is gone
            self._up.clear()
            self._transport = None
            self._engine_lost()
            if self._closing:  # stopped with the bot (e.g. its service's SIGTERM): no restart
                self._fail_all(
                    EngineUnavailable(
                        "the music engine stopped while shutting down; try again soon"
                    )
                )
                return
            transport = await self._restart()

    async def _serve(self, transport: Transport) -> None:
        watchdog = asyncio.create_task(self._watch(transport), name="engine-watchdog")
        try:
            while True:
                try:
                    message = await transport.receive()
                except TransportClosed as exc:
                    await transport.wait_exit(STOP_TIMEOUT)
                    log.error("the engine went away (%s; %s)", exc, transport.describe_exit())
                    return
                try:
                    self._dispatch(message)
                except Exception:
                    log.exception("could not handle a message from the engine")
        finally:
            watchdog.cancel()
            await asyncio.wait([watchdog])

    async def _restart(self) -> Transport:
        delays = itertools.chain(self._restart_delays, itertools.repeat(DOWN_RETRY_SECONDS))
        for attempt, delay in enumerate(delays, start=1):
            await asyncio.sleep(delay)
            try:
                return await self._launch()
            except EngineUnavailable as exc:
                log.error("engine restart %d failed: %s", attempt, exc)
            if attempt == len(self._restart_delays):
                self._down = True
                self._fail_all(
                    EngineUnavailable(
                        "the music engine stopped and could not be restarted; try again later"
                    )
                )
        raise AssertionError("unreachable: the delays never end")

    async def _watch(self, transport: Transport) -> None:
        """Kill an engine that stops answering while it has work (a hang is not an exit)."""
        while True:
            await asyncio.sleep(self._heartbeat)
            if not self._jobs:
                continue
            try:
                await asyncio.wait_for(self._ping(), 3 * self._heartbeat)
            except EngineUnavailable:
                return  # it died while we asked: the supervisor is already on it
            except TimeoutError:
                log.error(
                    "the engine did not answer a ping for %.0f s; killing it", 3 * self._heartbeat
                )
                transport.kill()
                return

    def _engine_lost(self) -> None:
        for ping in self._pings.values():
            if not ping.done():
                ping.set_exception(EngineUnavailable("the music engine restarted"))
        self._pings.clear()
        for job in list(self._jobs.values()):
            if job.sent_to is not None and job.attempts >= MAX_ATTEMPTS:
                self._settle(
                    job,
                    exception=EngineUnavailable(
                        "the music engine crashed twice while composing this; try again later"
                    ),
                )
            elif job.sent_to is not None and not job.future.done():
                # It starts again from the beginning on the next engine (seconds away): say
                # so, rather than leave the last progress standing still.
                job.progress = EngineRestarting()
                job.progress_changed.set()

    async def _resend(self) -> None:
        """Send the jobs that this engine has not seen (new ones, or their engine died)."""
        for job in list(self._jobs.values()):
            if not job.future.done() and job.sent_to != self._generation:
                if job.attempts:
                    log.warning("sending job %d again after an engine restart", job.id)
                await self._send_job(job)

    # Messages.
    async def _send_job(self, job: _InFlight[Any]) -> None:
        job.sent_to = self._generation
        job.attempts += 1
        if job.handover is not None and self._transport is not None:
            self._transport.hand_over(job.id, job.handover)
        await self._send(job.message)

    async def _send(self, message: ToEngine) -> None:
        transport = self._transport
        if transport is None:
            return  # the engine is restarting; the supervisor resends jobs when it is up
        try:
            await transport.send(encode(message))
        except TransportClosed as exc:
            # The supervisor sees the same death on its receive() and handles it.
            log.warning("could not send %s %s: %s", type(message).__name__, message.id, exc)

    def _dispatch(self, data: bytes) -> None:
        try:
            message: FromEngine = decode_from_engine(data)
        except msgspec.MsgspecError as exc:
            job_id = job_id_of(data)
            job = self._jobs.get(job_id) if job_id is not None else None
            log.error("the engine sent a malformed message (%s)", exc)
            if job is not None:
                self._settle(job, exception=EngineError(f"the engine sent a broken result ({exc})"))
            return
        if isinstance(message, Pong):
            ping = self._pings.pop(message.id, None)
            if ping is not None and not ping.done():
                ping.set_result(message.stats)
            return
        if isinstance(message, Ready):
            log.warning("the engine said it was ready a second time")
            return
        job = self._jobs.get(message.id) if message.id is not None else None
        if isinstance(message, JobFailed) and job is None:
            log.error("the engine reported: %s: %s", message.kind, message.message)
        elif job is None:
            return  # a reply for a job whose caller went away
        elif isinstance(message, JobProgress):
            job.progress = message.event
            job.progress_changed.set()
        elif isinstance(message, JobDone):
            if isinstance(message.result, job.expects):
                self._settle(job, result=message.result)
            else:
                log.error("job %s got a %s result", job.id, type(message.result).__name__)
                self._settle(
                    job,
                    exception=EngineError(
                        f"the engine sent a broken result (a {type(message.result).__name__})"
                    ),
                )
        else:
            self._settle(job, exception=message.exception())

    async def _ping(self) -> EngineStats:
        ping_id = next(self._ids)
        future: asyncio.Future[EngineStats] = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = future
        try:
            await self._send(PingCommand(ping_id))
            return await future
        finally:
            self._pings.pop(ping_id, None)

    # Helpers.
    def _check_accepting(self) -> None:
        if self._closing:
            raise EngineUnavailable("the music engine is shutting down; try again soon")
        if self._supervisor is None:
            raise RuntimeError("start the engine client first (async with EngineClient...)")
        if self._down:
            raise EngineUnavailable("the music engine is down; try again later")

    @staticmethod
    def _settle(
        job: _InFlight[Any],
        *,
        result: AnyResult | None = None,
        exception: BaseException | None = None,
    ) -> None:
        if job.future.done():
            return
        if exception is not None:
            job.future.set_exception(exception)
        else:
            job.future.set_result(result)

    def _fail_all(self, exc: EngineError) -> None:
        for job in list(self._jobs.values()):
            self._settle(job, exception=exc)

    def _in_background(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _pump_progress(job: _InFlight[Any], callback: ProgressCallback) -> None:
        """Call back with the latest event; a slow callback skips stale ones, never blocks."""
        while True:
            await job.progress_changed.wait()
            job.progress_changed.clear()
            event = job.progress
            assert event is not None
            try:
                outcome = callback(event)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                # Progress is cosmetic: a failing callback must not fail the composition.
                log.exception("progress callback failed for job %d", job.id)


def _ready(data: bytes) -> Ready:
    hello = decode_from_engine(data)
    if not isinstance(hello, Ready):
        raise TransportClosed(f"the engine said {type(hello).__name__} instead of ready")
    return hello
