"""The scheduler's policy alone, then the engine core in-process driven one step at a time:
guild turns, joining, leaving, cancelling."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from engine.api.config import WorkLimits
from engine.api.schema import ComposeRequest, Decoding, Queued, Rendering
from engine.core.engine_core import EngineCore, InProcessSeeds, Output, ScheduledJob
from engine.core.model_cache import ModelCache
from engine.core.scheduler import Scheduler
from engine.serving.model_store import ModelStore
from tests.engine.test_server import CHECKPOINT


@dataclass(eq=False)
class Job:
    guild: int
    name: str


def test_admission_fits_rows_under_the_cap_in_guild_turns():
    scheduler: Scheduler[Job] = Scheduler(max_rows=4)
    a1, a2, b1, c1 = Job(1, "a1"), Job(1, "a2"), Job(2, "b1"), Job(3, "c1")
    for job, rows in ((a1, 2), (a2, 2), (b1, 3), (c1, 1)):
        scheduler.add(job, rows)
    assert [(j.name, p) for j, p in scheduler.positions()] == [
        ("a1", 1),
        ("b1", 2),
        ("c1", 3),
        ("a2", 4),
    ]
    assert list(scheduler.positions()) == []  # nothing moved since
    assert scheduler.schedule() == [a1]  # b1's 3 rows do not fit beside a1's 2
    assert scheduler.active_rows == 2 and scheduler.waiting == 3
    assert not scheduler.row_finished(a1) and scheduler.row_finished(a1)  # its last row
    assert scheduler.schedule() == [b1, c1]  # the freed rows go to the next in turn at once
    assert [(j.name, p) for j, p in scheduler.positions()] == [("a2", 1)]
    assert scheduler.remove(a2) and not scheduler.remove(a2) and scheduler.waiting == 0
    assert scheduler.remove(b1) and scheduler.active_rows == 1
    assert scheduler.clear() == [c1] and len(scheduler) == 0 and scheduler.active_rows == 0


def test_a_job_larger_than_the_cap_runs_alone():
    scheduler: Scheduler[Job] = Scheduler(max_rows=2)
    big, small = Job(1, "big"), Job(2, "small")
    scheduler.add(big, 8)
    scheduler.add(small, 1)
    assert scheduler.schedule() == [big]  # nothing runs: it starts, over the cap
    assert scheduler.schedule() == []  # and nothing joins it
    for _ in range(8):
        scheduler.row_finished(big)
    assert scheduler.schedule() == [small]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> ModelCache:
    store = ModelStore(tmp_path_factory.mktemp("data"))
    return ModelCache(CHECKPOINT, torch.device("cpu"), budget_bytes=0, resolve=store.path_of)


class Recorder:
    """What the core emits: progress, and each job's end."""

    def __init__(self, models: ModelCache, max_rows: int) -> None:
        self.events: list[tuple[int, object]] = []
        self.decoded: list[int] = []  # in the order their last row finished
        self.dropped: list[int] = []
        self.failed: list[tuple[int, BaseException]] = []
        self.core = EngineCore(models, max_rows=max_rows, limits=WorkLimits(), emit=self.emit)

    def emit(self, job: ScheduledJob, output: Output) -> None:
        if not job.ended:
            self.events.append((job.id, output))
            if isinstance(output, Rendering):
                self.decoded.append(job.id)
        elif output is None:
            self.dropped.append(job.id)
        elif isinstance(output, BaseException):
            self.failed.append((job.id, output))

    def submit(
        self, job_id: int, *, guild: int = 0, bars: int = 2, candidates: int = 2
    ) -> ScheduledJob:
        """A job prepared at once, in the order of the calls (so the scheduler alone orders
        them), and submitted."""
        request = ComposeRequest(bars=bars, candidates=candidates, seed=job_id, guild_id=guild)
        job = ScheduledJob(job_id, request, guild=guild)
        self.core.prepare(job, InProcessSeeds())
        assert job.plan is not None and not job.ended
        return job

    def stats(self) -> dict:
        box: list[dict] = []
        self.core.stats(box.append)
        self.core.step()
        return box[0]

    def run_until_idle(self, jobs: int) -> None:
        for _ in range(100_000):
            if len(self.decoded) + len(self.dropped) >= jobs:
                return
            self.core.step()
        raise AssertionError("the core never finished")


def test_guilds_take_turns_when_the_batch_is_full(models):
    rec = Recorder(models, max_rows=2)  # one 2-row job at a time
    for job_id, guild in [(1, 10), (2, 10), (3, 10), (4, 20), (5, 30)]:
        rec.submit(job_id, guild=guild, bars=1)
    rec.run_until_idle(5)
    assert rec.decoded == [1, 4, 5, 2, 3]
    positions = {job_id: e.position for job_id, e in rec.events if isinstance(e, Queued)}
    assert 1 not in positions  # it started at once
    assert [e.position for j, e in rec.events if j == 3 and isinstance(e, Queued)] == [4, 3, 2, 1]
    assert rec.core.decoded.pending == 5  # each waits for a renderer


def test_rows_join_a_running_batch_and_leave_when_done(models):
    rec = Recorder(models, max_rows=16)
    long = rec.submit(1, bars=64, candidates=3)
    for _ in range(5):
        rec.core.step()
    figures = rec.stats()
    assert figures["active_rows"] == 3
    assert figures["tokens"] == 3 * figures["steps"] > 0  # each step samples a token a row
    short = rec.submit(2, bars=1, candidates=2)
    rec.core.step()
    assert rec.stats()["active_rows"] == 5  # joined at the next step, nothing waited
    while 2 not in rec.decoded:
        rec.core.step()
    assert 1 not in rec.decoded and rec.stats()["active_rows"] == 3  # left at once
    assert all(row.done for row in short.rows) and not any(row.done for row in long.rows)
    ours = [e for j, e in rec.events if j == 2]
    assert isinstance(ours[-1], Rendering) and ours[-2] == Decoding(100.0)
    percents = [e.percent for j, e in rec.events if j == 1 and isinstance(e, Decoding)]
    assert percents and percents == sorted(percents)
    long.cancelled = True
    rec.core.cancel(long)
    assert rec.stats() | {"steps": 0, "tokens": 0} == {
        "active_rows": 0,
        "max_rows": 16,
        "active_jobs": 0,
        "queued_jobs": 0,
        "steps": 0,
        "tokens": 0,
    }
    assert rec.dropped == [1] and long.model is None  # its model is handed back


def test_cancel_frees_rows_and_queue_places(models):
    rec = Recorder(models, max_rows=4)
    running, waiting, behind = (rec.submit(i, guild=i, bars=32, candidates=4) for i in (1, 2, 3))
    rec.core.step()
    assert rec.stats()["queued_jobs"] == 2
    waiting.cancelled = True
    rec.core.cancel(waiting)
    rec.core.step()
    assert rec.dropped == [2] and rec.stats()["queued_jobs"] == 1
    assert [e.position for j, e in rec.events if j == 3] == [2, 1]
    running.cancelled = True
    rec.core.cancel(running)
    rec.core.step()  # the freed rows go to the next job at once
    assert rec.dropped == [2, 1]
    assert rec.stats() | {"steps": 0, "tokens": 0} == {
        "active_rows": 4,
        "max_rows": 4,
        "active_jobs": 1,
        "queued_jobs": 0,
        "steps": 0,
        "tokens": 0,
    }
    rec.core.stop()
    assert not rec.core.step()
    assert rec.dropped == [2, 1, 3] and not rec.failed and behind.ended


def test_a_composition_ends_once_with_its_result_and_its_model_handed_back(models, renderer):
    rec = Recorder(models, max_rows=4)
    results: list[Output] = []
    emit = rec.emit

    def keep_result(job: ScheduledJob, output: Output) -> None:
        emit(job, output)
        if job.ended:
            results.append(output)

    rec.core._emit = keep_result
    users = models.base.users
    job = ScheduledJob(7, ComposeRequest(bars=2, candidates=2, seed=7), guild=1)
    rec.core.add(job)
    assert rec.core.prepare_next(InProcessSeeds())
    assert models.base.users == users + 1
    rec.run_until_idle(1)
    assert rec.core.render_next(renderer)
    [result] = results
    assert len(result.candidates) == 2 and result.pianoroll[:4] == b"\x89PNG"
    assert {"queue", "prefill", "sample", "render", "total"} <= set(result.timings)
    assert models.base.users == users and job.ended
    rec.core.close()
