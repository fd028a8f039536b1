"""The scheduler in-process, driven one tick at a time: guild turns, joining, leaving."""

from __future__ import annotations

import pytest
import torch

from engine.api.schema import ComposeRequest, Decoding, Queued, Rendering
from engine.generation.composer import plan_composition
from engine.serving.model_cache import LoadedModel, load_model
from engine.serving.scheduler import ScheduledJob, Scheduler
from tests.engine.test_server import CHECKPOINT


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_model(CHECKPOINT, torch.device("cpu"))


class Recorder:
    """The scheduler's callbacks, recorded."""

    def __init__(self) -> None:
        self.events: list[tuple[int, object]] = []
        self.decoded: list[int] = []
        self.dropped: list[int] = []
        self.failed: list[tuple[int, BaseException]] = []

    def scheduler(self, max_rows: int) -> Scheduler:
        return Scheduler(max_rows=max_rows, emit=lambda j, e: self.events.append((j.id, e)),
                         on_decoded=lambda j: self.decoded.append(j.id),
                         on_failed=lambda j, e: self.failed.append((j.id, e)),
                         on_dropped=lambda j: self.dropped.append(j.id))


def make_job(model: LoadedModel, job_id: int, *, guild: int = 0, bars: int = 2,
             candidates: int = 2) -> ScheduledJob:
    request = ComposeRequest(bars=bars, candidates=candidates, seed=job_id, guild_id=guild)
    job = ScheduledJob(job_id, request, guild=guild, model=model)
    job.plan = plan_composition(model.tokenizer, model.grammar, None, request)
    return job


def stats(scheduler: Scheduler) -> dict:
    box: list[dict] = []
    scheduler.stats(box.append)
    scheduler.tick()
    return box[0]


def run_until_idle(scheduler: Scheduler, recorder: Recorder, jobs: int) -> None:
    for _ in range(100_000):
        if len(recorder.decoded) + len(recorder.dropped) >= jobs:
            return
        scheduler.tick()
    raise AssertionError("the scheduler never finished")


def test_guilds_take_turns_when_the_batch_is_full(model):
    rec = Recorder()
    scheduler = rec.scheduler(max_rows=2)  # one 2-row job at a time
    for job_id, guild in [(1, 10), (2, 10), (3, 10), (4, 20), (5, 30)]:
        scheduler.submit(make_job(model, job_id, guild=guild, bars=1))
    run_until_idle(scheduler, rec, 5)
    assert rec.decoded == [1, 4, 5, 2, 3]
    positions = {job_id: e.position for job_id, e in rec.events if isinstance(e, Queued)}
    assert 1 not in positions  # it started at once
    assert [e.position for j, e in rec.events if j == 3 and isinstance(e, Queued)] == [4, 3, 2, 1]


def test_rows_join_a_running_batch_and_leave_when_done(model):
    rec = Recorder()
    scheduler = rec.scheduler(max_rows=16)
    long = make_job(model, 1, bars=64, candidates=3)
    scheduler.submit(long)
    for _ in range(5):
        scheduler.tick()
    figures = stats(scheduler)
    assert figures["active_rows"] == 3
    assert figures["tokens"] == 3 * figures["steps"] > 0  # each step samples a token a row
    short = make_job(model, 2, bars=1, candidates=2)
    scheduler.submit(short)
    scheduler.tick()
    assert stats(scheduler)["active_rows"] == 5  # joined at the next step, nothing waited
    while 2 not in rec.decoded:
        scheduler.tick()
    assert 1 not in rec.decoded and stats(scheduler)["active_rows"] == 3  # left at once
    assert all(row.done for row in short.rows) and not any(row.done for row in long.rows)
    ours = [e for j, e in rec.events if j == 2]
    assert isinstance(ours[-1], Rendering) and ours[-2] == Decoding(100.0)
    percents = [e.percent for j, e in rec.events if j == 1 and isinstance(e, Decoding)]
    assert percents and percents == sorted(percents)
    long.cancelled = True
    scheduler.cancel(long)
    assert stats(scheduler) | {"steps": 0, "tokens": 0} == {
        "active_rows": 0, "max_rows": 16, "active_jobs": 0, "queued_jobs": 0, "steps": 0,
        "tokens": 0}


def test_cancel_frees_rows_and_queue_places(model):
    rec = Recorder()
    scheduler = rec.scheduler(max_rows=4)
    running, waiting, behind = (make_job(model, i, guild=i, bars=32, candidates=4)
                                for i in (1, 2, 3))
    for job in (running, waiting, behind):
        scheduler.submit(job)
    scheduler.tick()
    assert stats(scheduler)["queued_jobs"] == 2
    waiting.cancelled = True
    scheduler.cancel(waiting)
    scheduler.tick()
    assert rec.dropped == [2] and stats(scheduler)["queued_jobs"] == 1
    assert [e.position for j, e in rec.events if j == 3] == [2, 1]
    running.cancelled = True
    scheduler.cancel(running)
    scheduler.tick()  # the freed rows go to the next job at once
    assert rec.dropped == [2, 1]
    assert stats(scheduler) | {"steps": 0, "tokens": 0} == {
        "active_rows": 4, "max_rows": 4, "active_jobs": 1, "queued_jobs": 0, "steps": 0,
        "tokens": 0}
    scheduler.stop()
    assert not scheduler.tick()
    assert rec.dropped == [2, 1, 3] and not rec.failed
