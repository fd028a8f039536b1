"""The job queue end to end on real components: redis-server on loopback, `python -m engine
worker` processes running the shipped checkpoint, the bot's client (queue_client) in this
process. Workers are killed with SIGKILL, their engines too, and Redis is restarted."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from engine.api.client import (
    BadSeed,
    ComposeRequest,
    Decoding,
    EngineRestarting,
    EngineUnavailable,
    Rendering,
)
from engine.api.queue_transport import queue_client
from tests.engine.test_client import check
from tests.queue.conftest import worker_starter
from tests.queue.processes import RedisServer, WorkerProcess, alive, holders

pytestmark = [pytest.mark.redis, pytest.mark.timeout(600)]

LONG_JOB = ComposeRequest(bars=16, candidates=4, seed=5)  # seconds of decoding: time to act


@pytest.fixture(scope="module")
def pair(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[WorkerProcess]]]:
    """Two workers of four decode rows each, for the tests that kill nothing."""
    started: list[WorkerProcess] = []
    prefix = f"test-pair-{os.getpid()}"
    try:
        yield (
            prefix,
            worker_starter(tmp_path_factory.mktemp("pair"), started)(
                redis_url, prefix, ["left", "right"], max_rows=4
            ),
        )
    finally:
        for worker in started:
            worker.stop()


async def long_job_decoding(engine, events: list[object]) -> asyncio.Task:
    """LONG_JOB sent and decoding; its progress events go to `events`."""
    decoding = asyncio.Event()

    def on_progress(event: object) -> None:
        events.append(event)
        if isinstance(event, Decoding):
            decoding.set()

    job = asyncio.create_task(engine.compose(LONG_JOB, on_progress=on_progress))
    await asyncio.wait_for(decoding.wait(), 120)
    return job


async def test_compositions_and_renders_go_through_the_workers(pair, redis_url, examples):
    prefix, _workers = pair
    events: list[object] = []
    async with queue_client(redis_url, prefix=prefix) as engine:
        result = await engine.compose(
            ComposeRequest(
                seed_midi=(examples / "motif.mid").read_bytes(), bars=4, candidates=2, seed=3
            ),
            on_progress=events.append,
        )
        check(result, 2, seeded=True)
        assert Decoding in {type(e) for e in events} and isinstance(events[-1], Rendering)
        rendered = await engine.render((examples / "band.mid").read_bytes(), pianoroll=True)
        assert rendered.audio[:4] == b"OggS" and rendered.pianoroll[:4] == b"\x89PNG"
        with pytest.raises(BadSeed, match="not a MIDI file"):
            await engine.compose(ComposeRequest(seed_midi=b"not MIDI at all", bars=4))
        stats = await engine.stats()
        assert stats.max_rows == 8 and "2 workers" in stats.device  # both engines, summed


async def test_a_worker_claims_only_the_compositions_it_has_rows_for(pair, redis_url, inspect):
    prefix, _workers = pair
    stream = f"{prefix}:jobs:compose"
    waited_for_rows = spread = False
    async with queue_client(redis_url, prefix=prefix) as engine:
        jobs = [
            asyncio.create_task(engine.compose(ComposeRequest(bars=8, candidates=4, seed=s)))
            for s in range(3)
        ]
        while not all(job.done() for job in jobs):
            held = holders(inspect, prefix)
            waiting = inspect.xlen(stream) - sum(held.values())  # answered ones are deleted
            # Each worker's four rows are taken by one job; the third job waits in Redis for
            # rows to free up, instead of queueing inside a worker that cannot decode it yet.
            spread = spread or held == {"left": 1, "right": 1}
            waited_for_rows = waited_for_rows or (held == {"left": 1, "right": 1} and waiting == 1)
            await asyncio.sleep(0.05)
        for job in jobs:
            check(job.result(), 4)
    assert spread and waited_for_rows


async def test_a_worker_killed_mid_job_has_it_taken_over_and_answered_once(
    redis_url, prefix, start_workers, inspect
):
    workers = {w.name: w for w in start_workers(redis_url, prefix, ["a", "b"])}
    events: list[object] = []
    async with queue_client(redis_url, prefix=prefix) as engine:
        job = await long_job_decoding(engine, events)
        [victim_name] = holders(inspect, prefix)
        victim = workers.pop(victim_name)
        [survivor] = workers.values()
        victim.kill()  # SIGKILL: no drain, no goodbye; its engine ends on EOF
        check(await asyncio.wait_for(job, 240), 4)
    # The member saw it start again (on the survivor), after the claim went idle.
    kinds = [type(e) for e in events]
    assert EngineRestarting in kinds and Decoding in kinds[kinds.index(EngineRestarting) :]
    assert "took over compose job" in survivor.log_text()
    counters = inspect.hgetall(f"{prefix}:counters")
    assert counters[b"posted"] == b"1" and b"duplicates" not in counters, counters
    assert inspect.xlen(f"{prefix}:dead") == 0
    assert alive(survivor.pid)


async def test_a_stalled_worker_that_wakes_up_does_not_answer_twice(
    redis_url, prefix, start_workers, inspect
):
    workers = {w.name: w for w in start_workers(redis_url, prefix, ["a", "b"])}
    events: list[object] = []
    async with queue_client(redis_url, prefix=prefix) as engine:
        job = await long_job_decoding(engine, events)
        [stalled_name] = holders(inspect, prefix)
        stalled = workers[stalled_name]
        # Frozen (a long GC pause, a VM migration): no heartbeat, no refresh of its claim,
        # while its engine decodes on. The other worker takes the job over and answers it.
        os.kill(stalled.pid, signal.SIGSTOP)
        try:
            check(await asyncio.wait_for(job, 240), 4)
        finally:
            os.kill(stalled.pid, signal.SIGCONT)
        # Awake, it finds the job answered: it stops it, or drops its own reply.
        async with asyncio.timeout(60):
            while not any(
                said in stalled.log_text()
                for said in ("was taken over by another worker", "was answered already")
            ):
                await asyncio.sleep(0.2)
    counters = inspect.hgetall(f"{prefix}:counters")
    assert counters[b"posted"] == b"1", counters
    assert alive(stalled.pid)


async def test_a_job_whose_engine_dies_twice_is_dead_lettered_and_the_worker_lives_on(
    redis_url, prefix, start_workers, inspect
):
    [worker] = start_workers(redis_url, prefix, ["solo"])
    killed: list[int] = []

    def on_progress(event: object) -> None:
        pid = worker.engine_pid()  # the worker's heartbeat names its engine
        if isinstance(event, Decoding) and pid and pid not in killed and len(killed) < 2:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    async with queue_client(redis_url, prefix=prefix) as engine:
        with pytest.raises(EngineUnavailable, match="crashed twice"):
            await asyncio.wait_for(engine.compose(LONG_JOB, on_progress=on_progress), 400)
        assert len(killed) == 2
        dead = inspect.xrange(f"{prefix}:dead")
        assert len(dead) == 1 and dead[0][1][b"deliveries"] == b"2"
        # The worker lived on, with a third engine, and serves the next member.
        assert alive(worker.pid)
        worker.wait_serving(not_engine=killed[-1])
        check(await engine.compose(ComposeRequest(bars=1, candidates=1, seed=0)), 1)


async def test_a_redis_restart_loses_no_job(redis_server: RedisServer, prefix, start_workers):
    [worker] = start_workers(redis_server.url, prefix, ["solo"])
    events: list[object] = []
    async with queue_client(redis_server.url, prefix=prefix) as engine:
        job = await long_job_decoding(engine, events)
        # Stopped and started again without its data: streams, groups, markers, heartbeats
        # are gone. Worker and client reconnect; the job is answered.
        redis_server.stop()
        await asyncio.sleep(1.0)
        redis_server.start()
        check(await asyncio.wait_for(job, 240), 4)
        check(await engine.compose(ComposeRequest(bars=1, candidates=1, seed=0)), 1)
    assert alive(worker.pid)
    assert "Redis answers again" in worker.log_text()


async def test_a_stopped_worker_posts_its_jobs_then_leaves(
    redis_url, prefix, start_workers, inspect
):
    [worker] = start_workers(redis_url, prefix, ["solo"])
    events: list[object] = []
    async with queue_client(redis_url, prefix=prefix) as engine:
        job = await long_job_decoding(engine, events)
        worker.process.send_signal(signal.SIGTERM)
        check(await asyncio.wait_for(job, 240), 4)
        assert await asyncio.to_thread(worker.process.wait, 60) == 0
        assert inspect.zscore(f"{prefix}:workers", "solo") is None  # left the live set
        with pytest.raises(EngineUnavailable, match="no music engine worker"):
            await asyncio.wait_for(engine.compose(ComposeRequest(bars=1)), 30)
