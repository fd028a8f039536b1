"""The engine process: reads jobs from its channel, batches their decoding, renders, replies.

Threads, each with one job:
    main       reads messages, validates them, registers jobs, routes cancels and pings
    planner-i  has the seed read (by its child process, engine.serving.seed_reader) and builds the
               prompt, so slow seeds never stall the batch (SEED_READERS of them)
    scheduler  owns the decode batches (engine.serving.scheduler)
    renderer-i each owns a FluidSynth synth (engine.audio.render is not thread-safe): MIDI, audio,
               OGG, piano roll of compositions, so rendering overlaps decoding
               (MOTIF_RENDER_THREADS of them)
    files-i    each owns a synth for whole MIDI files (seed plays, piece exports)
    loader     loads per-guild checkpoints (engine.serving.model_cache)
    finetune-i watches one fine-tune child process (engine.serving.finetune_processes)
A worker thread that dies of a bug shuts the channel: the engine exits and the client starts
a new one, retrying its jobs.

Every stage is fair between servers (guilds): one server's flood delays another's request by
the one job of it already under way at each stage, never by its backlog (bench.fairness):
- planning: one lane (engine.serving.fairness.FairLane) taking guilds in turn, served by two planner
  threads, and a guild's seeds are read one at a time: a server flooding big seeds holds one
  planner, another server's seed goes to the other at once. Each planner's seed is read and
  tokenized by its own child process at a lower CPU priority: in this process, a big seed's
  second of pure Python held the GIL that the decode loop takes back after every torch call,
  which slowed every server's decoding about fourfold;
- decoding: the scheduler's queue takes guilds in turn (engine.serving.scheduler);
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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.api.config import EngineSettings
from engine.api.errors import BadRequest, BadSeed, EngineError, EngineUnavailable
from engine.api.limits import Range
from engine.api.schema import (
    BadMessage,
    CancelCommand,
    ComposeCommand,
    ComposeRequest,
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
from engine.generation.composer import (
    ENCODER_THREADS,
    Plan,
    plan_composition,
    plan_from_seed,
    render_composition,
    seed_seconds,
    to_score,
)
from engine.generation.keep_seed import known_programs
from engine.generation.sample import Row, generate
from engine.model.device import pick_device
from engine.serving.fairness import FairLane
from engine.serving.finetune_processes import FinetuneProcesses
from engine.serving.model_cache import LoadedModel, ModelCache
from engine.serving.model_store import ModelStore
from engine.serving.render_job import render_midi
from engine.serving.scheduler import ScheduledJob, Scheduler
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
    model: None = None  # holds no model; the server ends every kind of job alike


def lower_thread_priority(niceness: int) -> None:
    """Make the calling thread `niceness` steps nicer than it is, where that is possible.

    On Linux the nice value belongs to each thread (setpriority(2), NOTES), so this leaves
    the engine's other threads as they are; elsewhere the thread keeps its priority.
    """
    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread,
                       os.getpriority(os.PRIO_PROCESS, thread) + niceness)
    except OSError as exc:
        log.warning("could not lower the priority of thread %s: %s", thread, exc)


class RenderPool:
    """The render threads, each owning a renderer: decoded jobs in, compositions out.

    Two lanes, each fair between guilds: compositions on `threads` renderers, whole files
    (AudioJob) on `file_threads` renderers of their own at a lower CPU priority.
    """

    def __init__(self, *, deliver: Callable[[ScheduledJob, ComposeResult], None],
                 deliver_audio: Callable[[AudioJob, RenderResult], None],
                 fail: Callable[[ScheduledJob | AudioJob, BaseException], None],
                 drop: Callable[[ScheduledJob | AudioJob], None],
                 release: Callable[[ScheduledJob], None],
                 threads: int = 1, file_threads: int = WHOLE_FILE_THREADS,
                 soundfont: Path | None = None) -> None:
        self._deliver, self._deliver_audio = deliver, deliver_audio
        self._fail, self._drop, self._release = fail, drop, release
        self._compositions: FairLane[ScheduledJob] = FairLane()
        self._files: FairLane[AudioJob] = FairLane()
        # One synth per thread (FluidSynth's sample cache shares the soundfont between them).
        self._renderers = [Renderer(soundfont) for _ in range(threads)]
        self._file_renderers = [Renderer(soundfont) for _ in range(file_threads)]
        self._encoders = ThreadPoolExecutor(max_workers=ENCODER_THREADS,
                                            thread_name_prefix="ogg-encoder")

    @property
    def pending(self) -> int:
        """Jobs handed over and not yet done, in both lanes (read by stats)."""
        return self._compositions.pending + self._files.pending

    def put(self, job: ScheduledJob | AudioJob) -> None:
        accepted = (self._files.put(job) if isinstance(job, AudioJob)
                    else self._compositions.put(job))
        if not accepted:  # stopping: nobody is left to render it
            self._drop(job)

    def workers(self) -> list[tuple[str, Callable[[], None]]]:
        """(thread name, loop) of every render thread, for the server to start."""
        return ([(f"renderer-{i}", functools.partial(self.run, i))
                 for i in range(len(self._renderers))]
                + [(f"files-{i}", functools.partial(self.run_files, i))
                   for i in range(len(self._file_renderers))])

    def stop(self) -> None:
        """Wake the render threads to stop; what was still queued is dropped."""
        for job in [*self._compositions.stop(), *self._files.stop()]:
            self._drop(job)

    def close(self) -> None:
        self._encoders.shutdown(wait=True)
        for renderer in [*self._renderers, *self._file_renderers]:
            renderer.close()

    def run(self, index: int) -> None:
        """The loop of composition render thread `index`, the only user of renderer `index`."""
        while self.render_next(index):
            pass

    def run_files(self, index: int) -> None:
        """The loop of whole-file render thread `index`, at a lower CPU priority."""
        lower_thread_priority(WHOLE_FILE_NICENESS)
        while self.render_next_file(index):
            pass

    def render_next(self, index: int) -> bool:
        """Render the next composition in guild turns with renderer `index` (waiting for one);
        False once stopped."""
        return self._next(self._compositions, self._renderers[index])

    def render_next_file(self, index: int) -> bool:
        """Render the next whole file in guild turns with whole-file renderer `index`."""
        return self._next(self._files, self._file_renderers[index])

    def _next(self, lane: FairLane[Any], renderer: Renderer) -> bool:
        job = lane.take()
        if job is None:
            return False
        try:
            reply = self._render(job, renderer)
        finally:
            lane.finished(job)
        reply()  # after the count, so a ping that follows the reply sees the job gone
        return True

    def _render(self, job: ScheduledJob | AudioJob, renderer: Renderer) -> Callable[[], None]:
        """Do the job; returns how to report it."""
        if job.cancelled:
            return functools.partial(self._drop, job)
        if isinstance(job, AudioJob):
            return self._render_audio(job, renderer)
        assert job.plan is not None and job.model is not None
        try:
            composition = self.render(job.plan, job.rows, job.model, job.request.max_audio_bytes,
                                      renderer, release=lambda: self._release(job))
        except Exception:
            log.exception("job %s could not be rendered", job.id)
            return functools.partial(self._fail, job, EngineError(
                "the engine could not render this composition"))
        return functools.partial(self._deliver, job, composition)

    def _render_audio(self, job: AudioJob, renderer: Renderer) -> Callable[[], None]:
        try:
            rendered = render_midi(renderer, job.midi, max_audio_bytes=job.max_audio_bytes,
                                   max_seconds=job.max_seconds, pianoroll=job.pianoroll)
        except BadRequest as exc:
            return functools.partial(self._fail, job, exc)
        except Exception:
            log.exception("render job %s failed", job.id)
            return functools.partial(self._fail, job, EngineError(
                "the engine could not render this MIDI file"))
        return functools.partial(self._deliver_audio, job, rendered)

    def warm_up(self, plan: Plan, rows: list[Row], model: LoadedModel) -> None:
        """Render once with every renderer; call before the threads start (no overlap)."""
        for renderer in [*self._renderers, *self._file_renderers]:
            self.render(plan, rows, model, None, renderer)

    def render(self, plan: Plan, rows: list[Row], model: LoadedModel,
               max_audio_bytes: int | None, renderer: Renderer, *,
               release: Callable[[], None] = lambda: None) -> ComposeResult:
        """Decode to MIDI and render; `release` frees the model once it is no longer needed."""
        started = time.perf_counter()
        with model.tokenizer_lock:
            scores = [to_score(model.tokenizer, plan, row.tokens, index=i)
                      for i, row in enumerate(rows)]
            seed_s = seed_seconds(model.tokenizer, plan)
        release()
        plan.timings["decode_midi"] = time.perf_counter() - started
        return render_composition(plan, rows, scores, seed_s, renderer=renderer,
                                  encoders=self._encoders, max_audio_bytes=max_audio_bytes)


@dataclass(eq=False)
class PlanTask:
    """A compose job whose model is loaded (or failed to load), waiting for the planner."""

    job: ScheduledJob
    loading: Future[LoadedModel]

    @property
    def guild(self) -> Hashable:
        return self.job.guild


class Server:
    def __init__(self, channel: SocketChannel, settings: EngineSettings, *,
                 checkpoint: Path) -> None:
        self._channel = channel
        self._work_limits = settings.work
        # A render job's max_seconds: any length up to the operator's bound.
        self._render_seconds = Range(0.0, settings.work.max_render_seconds, " s", low_open=True)
        self.device = pick_device(settings.device)
        self._lock = threading.Lock()  # guards _jobs and every job's model hand-back
        self._jobs: dict[int, ScheduledJob | AudioJob] = {}
        self._stopping = threading.Event()
        self._draining = threading.Event()  # a stop signal came: finish what is in flight
        self._fatal: str | None = None
        self._store = ModelStore(settings.data_dir)  # the guilds' versions: ids -> files
        self._models = ModelCache(checkpoint, self.device,
                                  budget_bytes=settings.model_cache_bytes,
                                  resolve=self._store.path_of)
        # A guild's seeds are read one at a time, so a flooding guild holds one reader and
        # another guild's seed goes to the other at once.
        self._planning: FairLane[PlanTask] = FairLane(one_per_guild=True)
        self._seeds = [SeedReader() for _ in range(SEED_READERS)]  # one per planner thread
        self._renderer = RenderPool(deliver=self._deliver, deliver_audio=self._deliver_audio,
                                      fail=self._fail, drop=self._drop, release=self._release,
                                      threads=settings.render_threads,
                                      soundfont=settings.soundfont)
        self._scheduler = Scheduler(max_rows=settings.max_rows_for(self.device.type),
                                    emit=self._progress, on_decoded=self._renderer.put,
                                    on_failed=self._fail, on_dropped=self._drop)
        self._tuning = FinetuneProcesses(settings.data_dir, self._store, self._send,
                                         threads=settings.finetune_threads)

    def run(self) -> int:
        """Serve until the client closes the channel; the exit code for the process."""
        self._warm_up()
        workers: list[tuple[str, Callable[[], None]]] = [("scheduler", self._scheduler.run)]
        workers += [(f"planner-{i}", functools.partial(self._run_planner, i))
                    for i in range(len(self._seeds))]
        workers += self._renderer.workers()
        threads = [threading.Thread(target=self._guarded, args=(name, target), name=name)
                   for name, target in workers]
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
            self._stopping.set()
            self._tuning.close()
            self._scheduler.stop()
            for task in self._planning.stop():
                self._drop_unplanned(task)
            self._renderer.stop()
            for thread in threads:
                thread.join()
            self._renderer.close()
            for reader in self._seeds:
                reader.close()
            self._models.close()
            self._channel.close()
        if self._fatal:
            log.error("stopped because the %s thread crashed", self._fatal)
            return 1
        log.info("stopped after finishing its jobs" if self._draining.is_set()
                 else "channel closed; stopped")
        return 0

    def _on_stop_signal(self, signum: int, frame: object) -> None:
        """Runs on the main thread, between any two of its bytecodes (maybe while it holds
        the channel's send lock): it only flags the drain and starts the thread that does it."""
        if self._draining.is_set():
            return
        self._draining.set()
        threading.Thread(target=self._stop_when_idle, args=(signal.Signals(signum).name,),
                         name="drain", daemon=True).start()

    def _stop_when_idle(self, signal_name: str) -> None:
        with self._lock:
            jobs = len(self._jobs)
        log.info("%s: refusing new jobs, finishing %d in flight, then stopping", signal_name, jobs)
        # Minutes of training cannot finish in a stop's grace: they end now, as failures.
        self._tuning.interrupt(EngineUnavailable(
            "the music engine stopped during this fine-tune; start it again later"))
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

    @torch.inference_mode()
    def _warm_up(self) -> None:
        """One tiny composition, so the first member does not pay for lazy initialisation."""
        started = time.perf_counter()
        base = self._models.base
        plan = plan_composition(base.tokenizer, base.grammar, None,
                                ComposeRequest(bars=1, candidates=1, seed=0))
        rows = generate(base.model, base.grammar, plan.prompt.ids, 1, plan.options, seed=0)
        self._renderer.warm_up(plan, rows, base)
        for reader in self._seeds:  # starts the children
            reader.read(base.tokenizer, WARM_UP_SEED.read_bytes())
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
            self._send_error(message.id, EngineUnavailable(
                "the music engine is stopping; try again in a minute"))
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
        job = ScheduledJob(message.id, request, guild=request.guild_id)
        if self._register(job):
            self._models.get(request.model).add_done_callback(
                lambda loading: self._to_planner(job, loading))

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
        job = AudioJob(message.id, request.midi, request.max_audio_bytes, float(max_seconds),
                       guild=request.guild_id, pianoroll=request.pianoroll)
        if self._register(job):
            self._renderer.put(job)

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

    def _to_planner(self, job: ScheduledJob, loading: Future[LoadedModel]) -> None:
        """Queue the job for planning once its model is loaded (on the loader's thread)."""
        task = PlanTask(job, loading)
        if self._stopping.is_set() or not self._planning.put(task):
            self._drop_unplanned(task)

    def _drop_unplanned(self, task: PlanTask) -> None:
        if task.loading.exception() is None:
            self._models.release(task.loading.result())
        self._drop(task.job)

    def _run_planner(self, index: int) -> None:
        while self.plan_next(index):
            pass

    def plan_next(self, index: int) -> bool:
        """Plan the next job in guild turns with seed reader `index` (waiting for one);
        False once stopped."""
        task = self._planning.take()
        if task is None:
            return False
        try:
            self._plan(task.job, task.loading, self._seeds[index])
        finally:
            self._planning.finished(task)
        return True

    def _plan(self, job: ScheduledJob, loading: Future[LoadedModel], reader: SeedReader) -> None:
        try:
            model = loading.result()
        except Exception as exc:
            log.exception("job %s: model %s could not be loaded", job.id, job.request.model)
            self._fail(job, EngineError(f"this server's model could not be loaded ({exc})"))
            return
        job.model = model
        if job.cancelled:
            self._drop(job)
            return
        try:
            started = time.perf_counter()
            # Read in the seed reader's process: a slow seed holds neither the GIL nor the
            # tokenizer that MIDI decoding (on the render threads) needs.
            seed = (None if job.request.seed_midi is None
                    else reader.read(model.tokenizer, job.request.seed_midi,
                                     max_notes=self._work_limits.max_seed_notes))
            with model.tokenizer_lock:
                job.plan = plan_from_seed(model.tokenizer, model.grammar, seed, job.request,
                                          self._work_limits, started=started,
                                          known=known_programs(model.coverage))
        except (BadSeed, BadRequest) as exc:
            self._fail(job, exc)
            return
        except Exception:
            log.exception("job %s: planning failed", job.id)
            self._fail(job, EngineError("the engine could not read this seed"))
            return
        self._scheduler.submit(job)

    def _on_cancel(self, job_id: int) -> None:
        if self._tuning.cancel(job_id):
            return
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            job.cancelled = True
            if isinstance(job, ScheduledJob):
                self._scheduler.cancel(job)

    def _on_ping(self, message: PingCommand) -> None:
        def reply(stats: dict[str, Any]) -> None:
            with self._lock:
                jobs = len(self._jobs)
            self._send(Pong(message.id, EngineStats(
                **stats, pid=os.getpid(), device=str(self.device), jobs=jobs,
                rendering_jobs=self._renderer.pending, models=self._models.keys(),
                training_jobs=self._tuning.running, draining=self._draining.is_set())))

        self._scheduler.stats(reply)

    # A job's ends (any thread). Each job ends exactly once: the registry says whether it has.
    def _release(self, job: ScheduledJob | AudioJob) -> None:
        with self._lock:
            model, job.model = job.model, None
        if model is not None:
            self._models.release(model)

    def _end(self, job: ScheduledJob | AudioJob) -> bool:
        self._release(job)
        with self._lock:
            return self._jobs.pop(job.id, None) is job

    def _drop(self, job: ScheduledJob | AudioJob) -> None:
        self._end(job)

    def _fail(self, job: ScheduledJob | AudioJob, exc: BaseException) -> None:
        if self._end(job) and not job.cancelled:
            self._send_error(job.id, exc)

    def _deliver(self, job: ScheduledJob, composition: ComposeResult) -> None:
        if not self._end(job) or job.cancelled:
            return
        timings = {**job.timings, **composition.timings,
                   "total": time.perf_counter() - job.received}
        composition.timings = {k: round(v, 4) for k, v in timings.items()}
        self._send(JobDone(job.id, composition))

    def _deliver_audio(self, job: AudioJob, rendered: RenderResult) -> None:
        if self._end(job) and not job.cancelled:
            self._send(JobDone(job.id, rendered))

    def _progress(self, job: ScheduledJob, event: ProgressEvent) -> None:
        if not job.cancelled:
            self._send(JobProgress(job.id, event))

    def _send_error(self, job_id: int | None, exc: BaseException) -> None:
        self._send(JobFailed.of(job_id, exc))

    def _send(self, message: FromEngine) -> None:
        self._channel.send(encode(message))
