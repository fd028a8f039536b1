"""The engine core: one composition from request to result, for the CLI and the server alike.

The path of one composition, in the order of this file:

    add          the job waits to be prepared, guilds in turn (a FairLane)
    1 prepare    its model (engine.core.model_cache), its seed read into tokens (by a
                 SeedSource: the server's seed reader child, or in this process offline),
                 its plan (engine.generation.stages.plan_from_seed: prompt, sampling options,
                 what it keeps of its seed)
    2 step       the scheduler (engine.core.scheduler: the policy) admits it, guilds in turn,
                 when its rows fit under the cap; DecodeBatches (engine.core.batches: the
                 execution) prefill its prompt and sample one token for every running row per
                 step, until all of its rows have finished
    3 render     its rows as MIDI (engine.generation.stages.to_score), then audio and a piano
                 roll (render_composition) with the calling thread's renderer
    4 end        its model released, and its result, its error or nothing (cancelled, or the
                 engine stopping) leaves through `emit`, like its progress before it

The stages are methods; the front end decides which threads run them, as vLLM's offline and
async front ends drive one engine core. The offline Composer (engine.core.composer) runs them
in turn on its own thread. The server (engine.serving.server) runs `prepare_next` on its
planner threads, `run` (steps) on the core thread and `render_next` on its render threads, so
a slow seed never stalls the batch and rendering overlaps decoding.

Threads talk to the core thread only through its inbox (submit, cancel, stats, stop): the
scheduler and the batches have one owner and need no lock. A job is cancelled by setting its
flag, seen by whichever stage holds it, and by a `cancel` that frees its rows at once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from symusic import Score

from engine.api.config import WorkLimits
from engine.api.errors import BadRequest, BadSeed, EngineError
from engine.api.schema import (
    ComposeRequest,
    ComposeResult,
    Decoding,
    ProgressEvent,
    Queued,
    Rendering,
)
from engine.audio.render import Renderer
from engine.core.batches import DecodeBatches
from engine.core.fairness import FairLane
from engine.core.model_cache import LoadedModel, ModelCache
from engine.core.scheduler import Scheduler
from engine.generation.keep_seed import known_programs
from engine.generation.sample import Row
from engine.generation.seed_tokens import SeedTokens
from engine.generation.stages import (
    ENCODER_THREADS,
    Plan,
    plan_from_seed,
    render_composition,
    seed_seconds,
    to_score,
)
from engine.model.tokenizer import MidiTokenizer

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.5  # seconds between percent updates of a job; Discord edits are slower


@dataclass(eq=False)
class ScheduledJob:
    """One composition on its way through the core."""

    id: int
    request: ComposeRequest  # checked when it arrived (engine.api.schema); its `model` is the
    # guild's version (None: the base model)
    guild: Hashable = None  # whose turn it is, at every stage
    seed_midi: bytes | None = None
    max_audio_bytes: int | None = None
    received: float = field(default_factory=time.perf_counter)
    model: LoadedModel | None = None  # acquired from the cache until the job ends
    plan: Plan | None = None
    rows: list[Row] = field(default_factory=list)
    finished_rows: int = 0
    cancelled: bool = False  # set from any thread; every stage checks it before working
    ended: bool = False  # set once, by `_end`
    position: int = 0  # last queue position reported
    percent: float = -1.0  # last percent reported
    timings: dict[str, float] = field(default_factory=dict)


# What a job sends out: progress while it runs, then one last output when it ends: its
# result, the error to report, or None (ended without a word: cancelled, or the engine stopping).
Output = ProgressEvent | ComposeResult | BaseException | None
Emit = Callable[[ScheduledJob, Output], None]


class SeedSource(Protocol):
    """Reads a seed into tokens: engine.serving.seed_reader.SeedReader, or InProcessSeeds."""

    def read(
        self, tokenizer: MidiTokenizer, seed: bytes, *, max_notes: int, quantise: bool
    ) -> SeedTokens: ...


class InProcessSeeds:
    """Seeds read on the calling thread (offline: nothing else waits for the GIL)."""

    def read(
        self, tokenizer: MidiTokenizer, seed: bytes, *, max_notes: int, quantise: bool
    ) -> SeedTokens:
        return SeedTokens.of(tokenizer, seed, max_notes=max_notes, quantise=quantise)


class EngineCore:
    def __init__(
        self, models: ModelCache, *, max_rows: int, limits: WorkLimits, emit: Emit
    ) -> None:
        self.models = models
        self.limits = limits
        self._emit = emit
        # A guild's seeds are prepared one at a time, so with two planners a flooding guild
        # holds one and another guild's seed goes to the other at once.
        self.preparing: FairLane[ScheduledJob] = FairLane(one_per_guild=True)
        self.decoded: FairLane[ScheduledJob] = FairLane()  # waiting for a renderer
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # Owned by the thread that steps:
        self._scheduler: Scheduler[ScheduledJob] = Scheduler(max_rows)
        self._batches = DecodeBatches()
        self._last_report = 0.0
        self._encoders = ThreadPoolExecutor(
            max_workers=ENCODER_THREADS, thread_name_prefix="ogg-encoder"
        )
        self._ending = threading.Lock()  # a job ends once, whichever threads race to end it

    def close(self) -> None:
        self._encoders.shutdown(wait=True)

    def add(self, job: ScheduledJob) -> None:
        """A new composition (any thread): it waits to be prepared."""
        if not self.preparing.put(job):  # stopping
            self._end(job, None)

    # 1. Prepare (a planner thread; offline, the caller's).
    def prepare_next(self, seeds: SeedSource) -> bool:
        """Prepare the next job in guild turns (waiting for one); False once stopped."""
        job = self.preparing.take()
        if job is None:
            return False
        try:
            self.prepare(job, seeds)
        finally:
            self.preparing.finished(job)
        return True

    def prepare(self, job: ScheduledJob, seeds: SeedSource) -> None:
        """Acquire the job's model, read its seed, plan it, and submit it to the scheduler;
        or end it with the reason it cannot go on (BadSeed, BadRequest: before any decoding)."""
        try:
            # A guild's model not in memory yet loads here, on this job's planner (the other
            # planner goes on with the other guilds).
            model = self.models.acquire(job.request.model)
        except Exception as exc:
            log.exception("job %s: model %s could not be loaded", job.id, job.request.model)
            self._end(job, EngineError(f"this server's model could not be loaded ({exc})"))
            return
        job.model = model
        if job.cancelled:
            self._end(job, None)
            return
        try:
            started = time.perf_counter()
            seed = (
                None
                if job.seed_midi is None
                else seeds.read(
                    model.tokenizer,
                    job.seed_midi,
                    max_notes=self.limits.max_seed_notes,
                    quantise=job.request.quantise,
                )
            )
            with model.tokenizer_lock:  # MIDI decoding on the render threads uses it too
                job.plan = plan_from_seed(
                    model.tokenizer,
                    model.grammar,
                    seed,
                    job.request,
                    self.limits,
                    started=started,
                    known=known_programs(model.coverage),
                )
        except (BadSeed, BadRequest) as exc:
            self._end(job, exc)
            return
        except Exception:
            log.exception("job %s: planning failed", job.id)
            self._end(job, EngineError("the engine could not read this seed"))
            return
        self._inbox.put(("submit", job))

    # 2. Schedule and decode (the core thread; offline, the caller's).
    def cancel(self, job: ScheduledJob) -> None:
        """Any thread, after setting `job.cancelled`: its rows or its place in line free at
        the next step (a stage that holds it ends it when it sees the flag)."""
        self._inbox.put(("cancel", job))

    def stats(self, reply: Callable[[dict[str, Any]], None]) -> None:
        """`reply` is called on the core thread, after every command sent before."""
        self._inbox.put(("stats", reply))

    def run(self) -> None:
        """The core thread's loop: step until stopped."""
        while self.step(block=True):
            pass

    @torch.inference_mode()
    def step(self, *, block: bool = False) -> bool:
        """Apply the commands, start what the scheduler admits, decode one token for every
        running row, report progress; False once stopped. With `block`, an idle core waits
        for a command instead of spinning."""
        for command, arg in self._commands(block=block and not self._scheduler.running):
            if command == "stop":
                self._drop_everything()
                return False
            getattr(self, f"_on_{command}")(arg)
        for job in self._scheduler.schedule():
            self._start(job)
        for job, position in self._scheduler.positions():  # after admission: no false wait
            if job.position != position:
                job.position = position
                self._progress(job, Queued(position))
        self._decode()
        self._report_percents()
        return True

    def _commands(self, *, block: bool) -> Iterator[tuple[str, Any]]:
        if block:
            yield self._inbox.get()
        while True:
            try:
                yield self._inbox.get_nowait()
            except queue.Empty:
                return

    def _on_submit(self, job: ScheduledJob) -> None:
        if job.cancelled:
            self._end(job, None)
        else:
            self._scheduler.add(job, job.request.candidates)

    def _on_cancel(self, job: ScheduledJob) -> None:
        if self._scheduler.remove(job):
            self._batches.cancel(job)
            self._end(job, None)
        # Otherwise the job is being prepared or rendered: that stage sees job.cancelled.

    def _on_stats(self, reply: Callable[[dict[str, Any]], None]) -> None:
        scheduler = self._scheduler
        reply(
            {
                "active_rows": scheduler.active_rows,
                "max_rows": scheduler.max_rows,
                "active_jobs": len(scheduler.running),
                "queued_jobs": scheduler.waiting,
                "steps": self._batches.steps,
                "tokens": self._batches.tokens,
            }
        )

    def _start(self, job: ScheduledJob) -> None:
        started = time.perf_counter()
        job.timings["queue"] = started - job.received
        try:
            self._batches.start(job)
        except Exception as exc:
            log.exception("job %s could not join the batch", job.id)
            self._scheduler.remove(job)
            self._end(job, exc)
            return
        job.timings["prefill"] = time.perf_counter() - started
        job.timings["sample_started"] = started

    def _decode(self) -> None:
        finished, failed = self._batches.step()
        for job, exc in failed.items():
            assert isinstance(job, ScheduledJob)
            self._scheduler.remove(job)
            self._end(job, exc)
        for row in finished:
            job = row.request
            assert isinstance(job, ScheduledJob)
            job.finished_rows += 1
            if self._scheduler.row_finished(job):
                job.timings["sample"] = time.perf_counter() - job.timings.pop("sample_started")
                self._progress(job, Decoding(100.0))
                self._progress(job, Rendering())
                if not self.decoded.put(job):  # stopping: nobody is left to render it
                    self._end(job, None)

    def _report_percents(self) -> None:
        now = time.perf_counter()
        running = self._scheduler.running
        if now - self._last_report < PROGRESS_INTERVAL or not running:
            return
        self._last_report = now
        done = self._batches.bars_written()
        for job in running:
            assert job.plan is not None
            bars = job.plan.options.grammar_bars
            written = done.get(job, 0) + job.finished_rows * bars
            percent = float(int(100.0 * written / (bars * len(job.rows))))
            if percent != job.percent:
                job.percent = percent
                self._progress(job, Decoding(percent))

    # 3. Render (a render thread; offline, the caller's).
    def render_next(self, renderer: Renderer) -> bool:
        """Render the next decoded job in guild turns with the caller's own `renderer`
        (waiting for one); False once stopped."""
        job = self.decoded.take()
        if job is None:
            return False
        try:
            output = None if job.cancelled else self._render(job, renderer)
        finally:
            self.decoded.finished(job)
        self._end(job, output)  # after the count, so a ping that follows sees the job gone
        return True

    def _render(self, job: ScheduledJob, renderer: Renderer) -> ComposeResult | BaseException:
        try:
            return self.render(job, renderer)
        except Exception:
            log.exception("job %s could not be rendered", job.id)
            return EngineError("the engine could not render this composition")

    def render(self, job: ScheduledJob, renderer: Renderer) -> ComposeResult:
        """The decoded job's candidates as MIDI, audio and a piano roll, with `renderer`
        (the calling thread's own: FluidSynth is not thread-safe)."""
        scores, seed_s = self._scores(job)
        self._release(job)  # the model is not needed to render: it may leave the cache
        assert job.plan is not None
        return render_composition(
            job.plan,
            job.rows,
            scores,
            seed_s,
            renderer=renderer,
            encoders=self._encoders,
            max_audio_bytes=job.max_audio_bytes,
        )

    def _scores(self, job: ScheduledJob) -> tuple[list[Score], float | None]:
        """The job's candidates as MIDI scores, and where its seed ends in them."""
        assert job.plan is not None and job.model is not None
        started = time.perf_counter()
        tokenizer = job.model.tokenizer
        with job.model.tokenizer_lock:
            scores = [
                to_score(tokenizer, job.plan, row.tokens, index=i) for i, row in enumerate(job.rows)
            ]
            seed_s = seed_seconds(tokenizer, job.plan)
        job.plan.timings["decode_midi"] = time.perf_counter() - started
        return scores, seed_s

    # 4. End (any thread): exactly once per job.
    def _end(self, job: ScheduledJob, output: Output) -> None:
        with self._ending:
            if job.ended:
                return
            job.ended = True
        self._release(job)
        if isinstance(output, ComposeResult):
            output.timings = {
                **job.timings,
                **output.timings,
                "total": time.perf_counter() - job.received,
            }
        self._emit(job, output)

    def _release(self, job: ScheduledJob) -> None:
        with self._ending:
            model, job.model = job.model, None
        if model is not None:
            self.models.release(model)

    def _progress(self, job: ScheduledJob, event: ProgressEvent) -> None:
        if not job.cancelled:
            self._emit(job, event)

    # Stopping.
    def stop(self) -> None:
        """Any thread: the core thread stops at its next step, and every job not finished
        ends without a word; the stages' lanes stop handing out work."""
        self._inbox.put(("stop", None))
        for job in [*self.preparing.stop(), *self.decoded.stop()]:
            self._end(job, None)

    def _drop_everything(self) -> None:
        for job in self._scheduler.clear():
            self._end(job, None)
        self._batches.clear()

    # Warming up.
    @torch.inference_mode()
    def warm_up(self, renderers: Sequence[Renderer]) -> None:
        """One tiny composition through every stage, rendered once with each renderer, so
        the first member does not pay for lazy initialisation. Call before any thread runs
        a stage (nothing overlaps)."""
        job = ScheduledJob(-1, ComposeRequest(bars=1, candidates=1, seed=0))
        ends: list[Output] = []

        def keep_end(job: ScheduledJob, output: Output) -> None:
            if job.ended:
                ends.append(output)

        # Nobody asked for this composition: its progress and its end go nowhere.
        emit, self._emit = self._emit, keep_end
        try:
            self.add(job)
            self.prepare_next(InProcessSeeds())
            while not self.decoded.pending and not job.ended:
                self.step()
            if job.ended:
                raise RuntimeError(f"the warm-up composition failed: {ends[-1]!r}")
            taken = self.decoded.take()
            assert taken is job
            try:
                assert job.plan is not None
                scores, seed_s = self._scores(job)
                for renderer in renderers:
                    render_composition(
                        job.plan,
                        job.rows,
                        scores,
                        seed_s,
                        renderer=renderer,
                        encoders=self._encoders,
                    )
            finally:
                self.decoded.finished(job)
                self._end(job, None)
        finally:
            self._emit = emit
