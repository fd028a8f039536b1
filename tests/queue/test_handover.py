"""A bot process' jobs outlive it (engine.api.queue_handover) on a real redis-server: a client
with an owner leaves a note per job while it lives and removes them when it closes; the notes
of a client that died are adopted once, and the job's reply is read from the dead client's
reply stream, or reported lost when it cannot come."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest
import pytest_asyncio

from engine.api.client import ComposeRequest
from engine.api.errors import BadSeed, EngineUnavailable, JobLost
from engine.api.queue_handover import QueueHandover
from engine.api.queue_keys import FINISH, GROUP, HEARTBEAT, QueueKeys, connect
from engine.api.queue_transport import queue_client
from engine.api.schema import ComposeResult, JobFailed, JobProgress, Queued, encode

pytestmark = pytest.mark.redis


@pytest_asyncio.fixture(loop_scope="function")
async def handover(redis_url: str, prefix: str) -> AsyncIterator[QueueHandover]:
    taker = QueueHandover(redis_url, owner="shards-0", prefix=prefix)
    yield taker
    await taker.aclose()


async def _a_worker_beats(redis_url: str, keys: QueueKeys) -> None:
    """A worker's heartbeat, so the client does not fail its jobs for want of one."""
    client = connect(redis_url)
    beat = client.register_script(HEARTBEAT)
    try:
        while True:
            await beat(keys=[keys.workers, keys.worker("w")], args=["w", 15_000, "state", "x"])
            await asyncio.sleep(0.5)
    finally:
        await client.aclose()


async def test_a_live_client_keeps_its_notes_and_a_closing_one_removes_them(
    redis_url: str, prefix: str, handover: QueueHandover
) -> None:
    keys = QueueKeys(prefix)
    inspect = connect(redis_url)
    beating = asyncio.create_task(_a_worker_beats(redis_url, keys))
    try:
        engine = queue_client(redis_url, prefix=prefix, owner="shards-0", close_timeout=0.1)
        async with engine:
            job = asyncio.create_task(engine.compose(ComposeRequest(bars=1), handover=b"post me"))
            async with asyncio.timeout(10):
                while not (jobs := await inspect.smembers(keys.notes("shards-0"))):
                    await asyncio.sleep(0.02)
            [name] = jobs
            note = msgspec.msgpack.decode(await inspect.get(keys.note(name.decode())))
            assert note["note"] == b"post me" and note["reply"] == keys.replies(note["client"])
            assert await handover.adopt() == []  # its process lives: it posts the job itself
        with pytest.raises(EngineUnavailable):
            await job  # failed by the closing client, which told its caller so
        assert await inspect.smembers(keys.notes("shards-0")) == set()
        assert await inspect.exists(keys.note(name.decode()), keys.client(note["client"])) == 0
    finally:
        beating.cancel()
        await inspect.aclose()


async def _dead_clients_job(
    redis_url: str, keys: QueueKeys, job: str, note: bytes, marker: str = "queued"
) -> None:
    """What a client that died with job `job` in flight leaves: the job (its marker) and its
    note, and no liveness key."""
    client = connect(redis_url)
    try:
        await client.set(keys.marker(job), marker)
        record = {"client": "dead", "reply": keys.replies("dead"), "id": 5, "note": note}
        await client.set(keys.note(job), msgspec.msgpack.encode(record))
        await client.sadd(keys.notes("shards-0"), job)
    finally:
        await client.aclose()


async def test_a_dead_clients_job_is_adopted_once_and_its_reply_read(
    redis_url: str, prefix: str, handover: QueueHandover
) -> None:
    keys = QueueKeys(prefix)
    await _dead_clients_job(redis_url, keys, "dead:5", b"post me")
    other = QueueHandover(redis_url, owner="shards-0", prefix=prefix)
    try:
        taken = await asyncio.gather(handover.adopt(), other.adopt())
    finally:
        await other.aclose()
    [orphan] = [o for adopted in taken for o in adopted]  # one process took it
    assert (orphan.id, orphan.note, orphan.reply) == (5, b"post me", keys.replies("dead"))
    elsewhere = QueueHandover(redis_url, owner="shards-1", prefix=prefix)
    try:  # another owner's process (other shards) never takes it
        await _dead_clients_job(redis_url, keys, "dead:7", b"theirs")
        assert await elsewhere.adopt() == []
    finally:
        await elsewhere.aclose()

    outcome = asyncio.create_task(handover.outcome(orphan, ComposeResult))
    await asyncio.sleep(0.3)
    assert not outcome.done()  # the job still runs on a worker
    client = connect(redis_url)
    try:  # the worker posts progress, another job's reply, then this job's reply
        await client.xadd(keys.replies("dead"), {"m": encode(JobProgress(5, Queued(0)))})
        await client.xadd(keys.replies("dead"), {"m": encode(JobFailed(6, "BadSeed", "other"))})
        await client.register_script(FINISH)(
            keys=[
                keys.marker("dead:5"),
                keys.replies("dead"),
                keys.stream("compose"),
                keys.counters,
            ],
            args=[
                GROUP,
                "1-1",
                encode(JobFailed(5, "BadSeed", "not a MIDI file")),
                60_000,
                60_000,
                100,
                "posted",
            ],
        )
        with pytest.raises(BadSeed, match="not a MIDI file"):
            await asyncio.wait_for(outcome, 10)
        assert await client.xlen(keys.replies("dead")) == 2  # its reply was taken out
    finally:
        await client.aclose()


async def test_a_reply_the_dead_client_had_read_is_reported_lost(
    redis_url: str, prefix: str, handover: QueueHandover
) -> None:
    # Answered, and the reply read (then trimmed) by the client before it died.
    await _dead_clients_job(redis_url, QueueKeys(prefix), "dead:5", b"post me", marker="done")
    [orphan] = await handover.adopt()
    with pytest.raises(JobLost):
        await asyncio.wait_for(handover.outcome(orphan, ComposeResult), 10)
