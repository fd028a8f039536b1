"""The engine process: reads jobs from its channel, runs them on its threads, replies.

A composition's path is the engine core's (engine.core.engine_core, read top to bottom there:
prepare, schedule and decode, render, end); this module gives its stages their threads and
speaks the wire. Threads, each with one job:
    main       reads messages, validates them, registers jobs, routes cancels and pings
    planner-i  the core's prepare stage, with a seed reader child of its own
               (engine.serving.seed_reader), so slow seeds never stall the batch (SEED_READERS)
    core       the core's loop: guild-fair admission and the batched decode step
    renderer-i each owns a FluidSynth synth (engine.audio.render is not thread-safe): the core's
               render stage (MIDI, audio, OGG, piano roll), so rendering overlaps decoding
               (MOTIF_RENDER_THREADS of them)
    files-i    each owns a synth for whole MIDI files (seed plays, piece exports)
    finetune-i watches one fine-tune child process (engine.serving.finetune_processes)
and the pool of OGG encoders the render stage uses. Everything a job sends back, from any
thread, goes through one method, `_on_output`. A worker thread that dies of a bug shuts the
channel: the engine exits and the client starts a new one, retrying its jobs.

Every stage is fair between servers (guilds): one server's flood delays another's request by
the one job of it already under way at each stage, never by its backlog (bench.fairness):
- preparing: one lane (engine.core.fairness.FairLane) taking guilds in turn, served by two
  planner threads, and a guild's jobs are prepared one at a time: a server flooding big seeds
  (or waiting for its model to load) holds one planner, another server's seed goes to the
  other at once. Each planner's seed is read and tokenized by its own child process at a lower
  CPU priority: in this process, a big seed's second of pure Python held the GIL that the
  decode loop takes back after every torch call, which slowed every server's decoding about
  fourfold;
- decoding: the scheduler's queue takes guilds in turn (engine.core.scheduler);
- rendering: two lanes, each taking guilds in turn. Compositions render on their own
  threads; whole files (seed plays, exports) on threads of their own, so a long export never
  holds a composition back, and those threads run at a lower CPU priority (nice), so on a
  busy machine a composition's render and decoding get the cores first. Whole files are
  long and nobody watches them being made the way a composition's progress is watched:
  they can wait; a composition is what members sit in front of.

SIGTERM (or SIGINT) drains: new jobs are refused with EngineUnavailable, fine-tunes are
stopped (reported as failed), the jobs in flight finish and are delivered, then the engine
exits 0. systemd's default KillMode signals every process of the service, the engine too:
a stop then loses no composition the bot was waiting for.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.api.config import EngineSettings
from engine.api.errors import BadRequest, EngineError, EngineUnavailable
from engine.api.limits import Range
from engine.api.schema import (
    BadMessage,
    CancelCommand,
    ComposeCommand,
    ComposeResult,
    EngineStats,
    FinetuneCommand,
    FromEngine,
    JobDone,
    JobFailed,
    JobProgress,
    PingCommand,
    Pong,
    ProgressEvent,
    Ready,
    RenderCommand,
    RenderResult,
    decode_to_engine,
    encode,
)
from engine.api.transport import SocketChannel
from engine.audio.render import Renderer
from engine.core.engine_core import EngineCore, Output, ScheduledJob
from engine.core.fairness import FairLane
from engine.core.model_cache import ModelCache
from engine.model.device import pick_device
from engine.serving.finetune_processes import FinetuneProcesses
from engine.serving.model_store import ModelStore
from engine.serving.render_job import render_midi
from engine.serving.seed_reader import SeedReader

log = logging.getLogger(__name__)

# How often a draining engine looks whether its last job has gone.
DRAIN_POLL_SECONDS = 0.05
NEW_WORK = (ComposeCommand, RenderCommand, FinetuneCommand)
# Whole files (seed plays, exports) render one at a time, apart from compositions, at this
# many steps of nice below the engine: they use idle cores, not the ones members wait on.
WHOLE_FILE_THREADS = 1
WHOLE_FILE_NICENESS = 10
WARM_UP_SEED = Path(__file__).parent.parent / "examples" / "motif.mid"
# Planner threads, each with a seed reader child (~100 MB): two, so that while one server's
# seeds keep one busy, every other server's seed is read by the other at once.
SEED_READERS = 2


@dataclass(eq=False)
class AudioJob:
    """A whole MIDI file to render (seed previews, parts of piece exports): nothing to decode.
    It renders at most `max_seconds` of audio (engine.serving.render_job bounds it)."""

    id: int
    midi: bytes
    max_audio_bytes: int | None
    max_seconds: float
    guild: Hashable = None  # whose turn it is in the whole-file lane
    pianoroll: bool = False  # draw the file too
    cancelled: bool = False


FileOutput = RenderResult | BaseException | None  # None: cancelled, or the engine stopping


def lower_thread_priority(niceness: int) -> None:
    """Make the calling thread `niceness` steps nicer than it is, where that is possible.

    On Linux the nice value belongs to each thread (setpriority(2), NOTES), so this leaves
    the engine's other threads as they are; elsewhere the thread keeps its priority.
    """
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + niceness)
    except OSError as exc:
        log.warning("could not lower the priority of thread %s: %s", thread, exc)


class WholeFiles:
    """Whole MIDI files to render: one lane, guilds in turn, on `threads` renderers of their
    own at a lower CPU priority. Every file's end goes to `output`."""

    def __init__(
        self,
        output: Callable[[AudioJob, FileOutput], None],
        *,
        threads: int = WHOLE_FILE_THREADS,
        soundfont: Path | None = None,
    ) -> None:
        self._output = output
        self._lane: FairLane[AudioJob] = FairLane()
        self.renderers = [Renderer(soundfont) for _ in range(threads)]

    @property
    def pending(self) -> int:
        """Files handed over and not yet done (read by stats)."""
        return self._lane.pending

    def put(self, job: AudioJob) -> None:
        if not self._lane.put(job):  # stopping: nobody is left to render it
            self._output(job, None)

    def stop(self) -> None:
        """Wake the threads to stop; what was still queued ends without a word."""
        for job in self._lane.stop():
            self._output(job, None)

    def close(self) -> None:
        for renderer in self.renderers:
            renderer.close()

    def run(self, index: int) -> None:
        """The loop of whole-file thread `index`, the only user of renderer `index`."""
        lower_thread_priority(WHOLE_FILE_NICENESS)
        while self.render_next(index):
            pass

    def render_next(self, index: int) -> bool:
        """Render the next file in guild turns with renderer `index` (waiting for one); False
        once stopped."""
        job = self._lane.take()
        if job is None:
            return False
        try:
            output = None if job.cancelled else self._render(job, self.renderers[index])
        finally:
            self._lane.finished(job)
        self._output(job, output)  # after the count, so a ping that follows sees the job gone
        return True

    def _render(self, job: AudioJob, renderer: Renderer) -> FileOutput:
        try:
            return render_midi(
                renderer,
                job.midi,
                max_audio_bytes=job.max_audio_bytes,
                max_seconds=job.max_seconds,
                pianoroll=job.pianoroll,
            )
        except BadRequest as exc:
            return exc
        except Exception:
            log.exception("render job %s failed", job.id)
            return EngineError("the engine could not render this MIDI file")


class Server:
    def __init__(
        self, channel: SocketChannel, settings: EngineSettings, *, checkpoint: Path
    ) -> None:
        self._channel = channel
        self._work_limits = settings.work
        # A render job's max_seconds: any length up to the operator's bound.
        self._render_seconds = Range(0.0, settings.work.max_render_seconds, " s", low_open=True)
        self.device = pick_device(settings.device)
        self._lock = threading.Lock()  # guards _jobs
        self._jobs: dict[int, ScheduledJob | AudioJob] = {}
        self._draining = threading.Event()  # a stop signal came: finish what is in flight
        self._fatal: str | None = None
        # The guilds' versions: ids -> files, and which of them a server keeps.
        self._store = ModelStore(settings.data_dir, keep_recent=settings.finetune_keep_versions)
        self._models = ModelCache(
            checkpoint,
            self.device,
            budget_bytes=settings.model_cache_bytes,
            resolve=self._store.path_of,
        )
        self._core = EngineCore(
            self._models,
            max_rows=settings.max_rows_for(self.device.type),
            limits=settings.work,
            emit=self._on_output,
        )
        self._seeds = [SeedReader() for _ in range(SEED_READERS)]  # one per planner thread
        # One synth per thread (FluidSynth's sample cache shares the soundfont between them).
        self._renderers = [Renderer(settings.soundfont) for _ in range(settings.render_threads)]
        self._files = WholeFiles(self._on_output, soundfont=settings.soundfont)
        self._tuning = FinetuneProcesses(
            settings.data_dir, self._store, self._send, threads=settings.finetune_threads
        )

    def run(self) -> int:
        """Serve until the client closes the channel; the exit code for the process."""
        self._warm_up()
        core = self._core
        workers: list[tuple[str, Callable[[], None]]] = [("core", core.run)]
        workers += [
            (f"planner-{i}", functools.partial(self._loop, core.prepare_next, reader))
            for i, reader in enumerate(self._seeds)
        ]
        workers += [
            (f"renderer-{i}", functools.partial(self._loop, core.render_next, renderer))
            for i, renderer in enumerate(self._renderers)
        ]
        workers += [
            (f"files-{i}", functools.partial(self._files.run, i))
            for i in range(len(self._files.renderers))
        ]
        threads = [
            threading.Thread(target=self._guarded, args=(name, target), name=name)
            for name, target in workers
        ]
        for thread in threads:
            thread.start()
        self._send(Ready(os.getpid(), str(self.device), self._models.base.key))
        log.info("serving on %s with the model %s", self.device, self._models.base.key)
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop_signal, self._on_stop_signal)
        try:
            while (message := self._channel.receive()) is not None:
                self._handle(message)
        finally:
            self._tuning.close()
            core.stop()
            self._files.stop()
            for thread in threads:
                thread.join()
            core.close()
            self._files.close()
            for renderer in self._renderers:
                renderer.close()
            for reader in self._seeds:
                reader.close()
            self._channel.close()
        if self._fatal:
            log.error("stopped because the %s thread crashed", self._fatal)
            return 1
        log.info(
            "stopped after finishing its jobs"
            if self._draining.is_set()
            else "channel closed; stopped"
        )
        return 0

    @staticmethod
    def _loop(stage: Callable[[Any], bool], own: object) -> None:
        """A worker's loop: run `stage` with the worker's own reader or renderer until the
        core stops."""
        while stage(own):
            pass

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        """Runs on the main thread, between any two of its bytecodes (maybe while it holds
        the channel's send lock): it only flags the drain and starts the thread that does it."""
        if self._draining.is_set():
            return
        self._draining.set()
        threading.Thread(
            target=self._stop_when_idle,
            args=(signal.Signals(signum).name,),
            name="drain",
            daemon=True,
        ).start()

    def _stop_when_idle(self, signal_name: str) -> None:
        with self._lock:
            jobs = len(self._jobs)
        log.info("%s: refusing new jobs, finishing %d in flight, then stopping", signal_name, jobs)
        # Minutes of training cannot finish in a stop's grace: they end now, as failures.
        self._tuning.interrupt(
            EngineUnavailable(
                "the music engine stopped during this fine-tune; start it again later"
            )
        )
        while True:
            with self._lock:
                idle = not self._jobs
            if idle and not self._tuning.running:
                break
            time.sleep(DRAIN_POLL_SECONDS)
        self._channel.shutdown()  # wakes the main thread, which stops everything

    def _guarded(self, name: str, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException:
            # Logged here and answered by stopping: the client restarts the engine and
            # retries its jobs (re-raising would only print the traceback twice).
            log.exception("the %s thread crashed; stopping the engine", name)
            self._fatal = name
            self._channel.shutdown()  # wakes the main thread, which stops everything

    def _warm_up(self) -> None:
        """The core's warm-up (the offline Composer's too), with every renderer; then the
        seed reader children start."""
        started = time.perf_counter()
        self._core.warm_up([*self._renderers, *self._files.renderers])
        for reader in self._seeds:
            reader.read(self._models.base.tokenizer, WARM_UP_SEED.read_bytes())
        log.info("warmed up in %.2f s", time.perf_counter() - started)

    # Messages from the client (main thread), decoded and checked once here.
    def _handle(self, data: bytes) -> None:
        try:
            message = decode_to_engine(data)
        except BadMessage as exc:
            self._send_error(exc.job_id, exc)
            return
        kind = message.__struct_config__.tag  # "compose", "render", ...: what the client sent
        if isinstance(message, NEW_WORK) and self._draining.is_set():
            self._send_error(
                message.id, EngineUnavailable("the music engine is stopping; try again in a minute")
            )
            return
        try:
            if isinstance(message, ComposeCommand):
                self._on_compose(message)
            elif isinstance(message, RenderCommand):
                self._on_render(message)
            elif isinstance(message, FinetuneCommand):
                self._on_finetune(message)
            elif isinstance(message, CancelCommand):
                self._on_cancel(message.id)
            else:
                self._on_ping(message)
        except Exception:
            # One odd message must not stop the engine every other job runs on.
            log.exception("could not handle %s message %s", kind, message.id)
            if isinstance(message, ComposeCommand):
                with self._lock:
                    self._jobs.pop(message.id, None)
            self._send_error(message.id, EngineError(f"the engine could not handle this {kind}"))

    def _on_compose(self, message: ComposeCommand) -> None:
        request = message.request
        if request.model is not None:
            try:
                self._store.find(request.model, guild_id=request.guild_id)
            except BadRequest as exc:
                self._send_error(message.id, exc)
                return
        job = ScheduledJob(
            message.id,
            request,
            guild=request.guild_id,
            seed_midi=request.seed_midi,
            max_audio_bytes=request.max_audio_bytes,
        )
        if self._register(job):
            self._core.add(job)

    def _on_render(self, message: RenderCommand) -> None:
        request = message.request
        max_seconds = request.max_seconds
        if max_seconds is None:
            max_seconds = self._work_limits.max_render_seconds
        try:
            self._render_seconds.check("max_seconds", max_seconds, BadRequest)
        except BadRequest as exc:
            self._send_error(message.id, exc)
            return
        job = AudioJob(
            message.id,
            request.midi,
            request.max_audio_bytes,
            float(max_seconds),
            guild=request.guild_id,
            pianoroll=request.pianoroll,
        )
        if self._register(job):
            self._files.put(job)

    def _on_finetune(self, message: FinetuneCommand) -> None:
        try:
            self._tuning.start(message.id, message.request)
        except BadRequest as exc:
            self._send_error(message.id, exc)

    def _register(self, job: ScheduledJob | AudioJob) -> bool:
        with self._lock:
            fresh = job.id not in self._jobs
            if fresh:
                self._jobs[job.id] = job
        if not fresh:
            self._send_error(job.id, BadRequest(f"job id {job.id} is already in use"))
        return fresh

    def _on_cancel(self, job_id: int) -> None:
        if self._tuning.cancel(job_id):
            return
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            job.cancelled = True
            if isinstance(job, ScheduledJob):
                self._core.cancel(job)

    def _on_ping(self, message: PingCommand) -> None:
        def reply(stats: dict[str, Any]) -> None:
            with self._lock:
                jobs = len(self._jobs)
            self._send(
                Pong(
                    message.id,
                    EngineStats(
                        **stats,
                        pid=os.getpid(),
                        device=str(self.device),
                        jobs=jobs,
                        rendering_jobs=self._core.decoded.pending + self._files.pending,
                        models=self._models.keys(),
                        training_jobs=self._tuning.running,
                        draining=self._draining.is_set(),
                    ),
                )
            )

        self._core.stats(reply)

    # What jobs send back (any thread).
    def _on_output(self, job: ScheduledJob | AudioJob, output: Output | FileOutput) -> None:
        """Progress while a job runs, then its end: a result, an error to report, or None
        (ended without a word). Each job ends once: the registry says whether it has."""
        if isinstance(output, ProgressEvent):
            self._progress(job, output)
            return
        with self._lock:
            ended = self._jobs.pop(job.id, None) is job
        if not ended or job.cancelled or output is None:
            return
        if isinstance(output, BaseException):
            self._send_error(job.id, output)
        elif isinstance(output, ComposeResult):
            self._deliver(job, output)
        else:
            self._deliver_audio(job, output)

    def _deliver(self, job: ScheduledJob | AudioJob, composition: ComposeResult) -> None:
        composition.timings = {k: round(v, 4) for k, v in composition.timings.items()}
        self._send(JobDone(job.id, composition))

    def _deliver_audio(self, job: ScheduledJob | AudioJob, rendered: RenderResult) -> None:
        self._send(JobDone(job.id, rendered))

    def _progress(self, job: ScheduledJob | AudioJob, event: ProgressEvent) -> None:
        if not job.cancelled:
            self._send(JobProgress(job.id, event))

    def _send_error(self, job_id: int | None, exc: BaseException) -> None:
        self._send(JobFailed.of(job_id, exc))

    def _send(self, message: FromEngine) -> None:
        self._channel.send(encode(message))
