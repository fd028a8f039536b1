"""Continuous batching: every running composition decodes in one batch per model.

The scheduler thread owns the decode batches. Planned jobs wait in a queue that takes guilds
in turn; a job starts when its rows fit under the cap on active rows: its prompt is prefilled
and its rows join the running batch at the next step. A row leaves the batch the step it
finishes; a job whose rows have all finished goes to the render worker. Other threads talk
to the scheduler only through its inbox (submit, cancel, stats), so the batches need no lock.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.api.schema import ComposeRequest, Decoding, ProgressEvent, Queued, Rendering
from engine.generation.composer import Plan
from engine.generation.sample import DecodeBatch, Row
from engine.serving.fairness import FairQueue
from engine.serving.model_cache import LoadedModel

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.5  # seconds between percent updates of a job; Discord edits are slower


@dataclass(eq=False)
class ScheduledJob:
    id: int
    request: ComposeRequest  # checked when it arrived (engine.api.schema)
    guild: Hashable
    received: float = field(default_factory=time.perf_counter)
    model: LoadedModel | None = None  # acquired from the cache until the job is finished
    plan: Plan | None = None
    rows: list[Row] = field(default_factory=list)
    finished_rows: int = 0
    cancelled: bool = False  # set from any thread; every stage checks it before working
    position: int = 0  # last queue position reported
    percent: float = -1.0  # last percent reported
    timings: dict[str, float] = field(default_factory=dict)


Emit = Callable[[ScheduledJob, ProgressEvent], None]


class Scheduler:
    def __init__(self, *, max_rows: int, emit: Emit, on_decoded: Callable[[ScheduledJob], None],
                 on_failed: Callable[[ScheduledJob, BaseException], None],
                 on_dropped: Callable[[ScheduledJob], None]) -> None:
        self.max_rows = max_rows
        self._emit, self._on_decoded = emit, on_decoded
        self._on_failed, self._on_dropped = on_failed, on_dropped
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        # Owned by the scheduler thread:
        self._queue: FairQueue[ScheduledJob] = FairQueue()
        self._batches: dict[LoadedModel, DecodeBatch] = {}
        self._active: dict[ScheduledJob, LoadedModel] = {}
        self._active_rows = 0
        self._steps = 0
        self._tokens = 0  # one per row per step: what "decode tokens/s" is measured in
        self._last_report = 0.0
        self._queue_changed = False

    # Thread-safe entry points.
    def submit(self, job: ScheduledJob) -> None:
        """A planned job (its model acquired) waits for room in the batch."""
        if job.plan is None or job.model is None:
            raise ValueError(f"job {job.id} must be planned before it is queued")
        self._inbox.put(("submit", job))

    def cancel(self, job: ScheduledJob) -> None:
        self._inbox.put(("cancel", job))

    def stats(self, reply: Callable[[dict[str, Any]], None]) -> None:
        """`reply` is called on the scheduler thread, after every command sent before."""
        self._inbox.put(("stats", reply))

    def stop(self) -> None:
        self._inbox.put(("stop", None))

    # The scheduler thread.
    def run(self) -> None:
        while self.tick(block=True):
            pass

    @torch.inference_mode()
    def tick(self, *, block: bool = False) -> bool:
        """Apply the commands, start what fits, step every batch once; False once stopped.

        With `block`, an idle scheduler waits for a command instead of spinning.
        """
        for command, arg in self._commands(block=block and not self._batches):
            if command == "stop":
                self._drop_everything()
                return False
            getattr(self, f"_on_{command}")(arg)
        self._admit()
        if self._queue_changed:
            self._queue_changed = False
            self._report_positions()  # after admission: a job that starts at once never waits
        self._step()
        self._report()
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
            self._on_dropped(job)
            return
        self._queue.push(job)
        self._queue_changed = True

    def _on_cancel(self, job: ScheduledJob) -> None:
        if self._queue.remove(job):
            self._on_dropped(job)
            self._queue_changed = True
        elif job in self._active:
            model = self._active.pop(job)
            batch = self._batches[model]
            self._active_rows -= batch.cancel(job)
            if not len(batch):
                del self._batches[model]
            self._on_dropped(job)
        # Otherwise the job is being planned or rendered: that stage sees job.cancelled.

    def _on_stats(self, reply: Callable[[dict[str, Any]], None]) -> None:
        reply({"active_rows": self._active_rows, "max_rows": self.max_rows,
               "active_jobs": len(self._active), "queued_jobs": len(self._queue),
               "steps": self._steps, "tokens": self._tokens})

    def _admit(self) -> None:
        while (job := self._queue.peek()) is not None and (
                self._active_rows + job.request.candidates <= self.max_rows
                or not self._active):  # a job larger than the cap still runs, alone
            self._queue.pop()
            self._queue_changed = True
            try:
                self._start(job)
            except Exception as exc:
                log.exception("job %s could not join the batch", job.id)
                self._on_failed(job, exc)

    def _start(self, job: ScheduledJob) -> None:
        assert job.plan is not None and job.model is not None
        started = time.perf_counter()
        job.timings["queue"] = started - job.received
        generator = torch.Generator()
        generator.manual_seed(job.request.seed if job.request.seed is not None else torch.seed())
        job.rows = [Row(request=job, generator=generator, options=job.plan.options,
                        guidance=job.plan.guidance)
                    for _ in range(job.request.candidates)]
        batch = self._batches.get(job.model)
        if batch is None:
            batch = DecodeBatch(job.model.model, job.model.grammar)
        batch.add(job.plan.prompt.ids, job.rows, first_onset=job.plan.prompt.first_onset)
        self._batches[job.model] = batch
        self._active[job] = job.model
        self._active_rows += len(job.rows)
        job.timings["prefill"] = time.perf_counter() - started
        job.timings["sample_started"] = started

    def _step(self) -> None:
        for model, batch in list(self._batches.items()):
            rows = len(batch)
            try:
                finished = batch.step()
            except Exception as exc:
                # A bug, not a bad request: fail this model's jobs, keep serving the others.
                log.exception("decode step failed for model %s", model.key)
                del self._batches[model]
                for job in [j for j, m in self._active.items() if m is model]:
                    del self._active[job]
                    self._active_rows -= len(job.rows) - job.finished_rows
                    self._on_failed(job, exc)
                continue
            self._steps += 1
            self._tokens += rows
            for row in finished:
                job = row.request
                assert isinstance(job, ScheduledJob)
                job.finished_rows += 1
                self._active_rows -= 1
                if job.finished_rows == len(job.rows):
                    del self._active[job]
                    job.timings["sample"] = time.perf_counter() - job.timings.pop(
                        "sample_started")
                    self._emit(job, Decoding(100.0))
                    self._emit(job, Rendering())
                    self._on_decoded(job)
            if not len(batch):
                del self._batches[model]

    def _report(self) -> None:
        now = time.perf_counter()
        if now - self._last_report < PROGRESS_INTERVAL or not self._active:
            return
        self._last_report = now
        done: dict[ScheduledJob, int] = {}
        for batch in self._batches.values():
            assert batch.gstate is not None
            # A row is in the bar it opened last: the ones before it are written.
            for row, opened in zip(batch.rows, batch.gstate.bars.tolist(), strict=True):
                done[row.request] = done.get(row.request, 0) + max(0, opened - 1)
        for job in self._active:
            assert job.plan is not None
            bars = job.plan.options.grammar_bars
            written = done.get(job, 0) + job.finished_rows * bars
            percent = float(int(100.0 * written / (bars * len(job.rows))))
            if percent != job.percent:
                job.percent = percent
                self._emit(job, Decoding(percent))

    def _report_positions(self) -> None:
        for position, job in enumerate(self._queue, start=1):
            if job.position != position:
                job.position = position
                self._emit(job, Queued(position))

    def _drop_everything(self) -> None:
        for job in [*self._queue, *self._active]:
            self._on_dropped(job)
        self._queue = FairQueue()
        self._batches.clear()
        self._active.clear()
        self._active_rows = 0
