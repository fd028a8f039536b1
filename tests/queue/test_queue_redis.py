"""The queue's Redis side on a real redis-server, without engines: each job queued once,
answered once, claims refreshed and taken over, and a client with no worker told so."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from engine.api.client import ComposeRequest, EngineClient, EngineUnavailable
from engine.api.queue_keys import (
    FINISH,
    GROUP,
    HEARTBEAT,
    SUBMIT,
    TOUCH,
    QueueKeys,
    connect,
)
from engine.api.queue_transport import queue_client
from tests.queue.processes import free_port

pytestmark = pytest.mark.redis


async def _queued(client, keys: QueueKeys, job: str, body: bytes = b"\x80") -> int:
    submit = client.register_script(SUBMIT)
    return await submit(
        keys=[keys.marker(job), keys.stream("compose"), keys.counters],
        args=[60_000, job, keys.replies("c"), 1, body],
    )


async def _finish(client, keys: QueueKeys, job: str, entry: bytes, message: bytes) -> int:
    finish = client.register_script(FINISH)
    return await finish(
        keys=[keys.marker(job), keys.replies("c"), keys.stream("compose"), keys.counters],
        args=[GROUP, entry, message, 60_000, 60_000, 100, "posted"],
    )


async def test_a_job_sent_again_is_queued_once(redis_url: str, prefix: str) -> None:
    keys, client = QueueKeys(prefix), connect(redis_url)
    try:
        assert await _queued(client, keys, "c:1") == 1
        assert await _queued(client, keys, "c:1") == 0  # a resend after a reconnect
        assert await client.xlen(keys.stream("compose")) == 1
        assert await client.get(keys.marker("c:1")) == b"queued"
    finally:
        await client.aclose()


async def test_a_reply_is_posted_once_whoever_finishes_the_job(redis_url: str, prefix: str) -> None:
    keys, client = QueueKeys(prefix), connect(redis_url)
    stream = keys.stream("compose")
    try:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        await _queued(client, keys, "c:1")
        [[_, [(entry, _fields)]]] = await client.xreadgroup(GROUP, "a", {stream: ">"})
        # Worker a stalled; b took the job over, and both finish it.
        await client.xclaim(stream, GROUP, "b", 0, [entry])
        assert await _finish(client, keys, "c:1", entry, b"first") == 1
        assert await _finish(client, keys, "c:1", entry, b"second") == 0
        replies = await client.xrange(keys.replies("c"))
        assert [fields[b"m"] for _, fields in replies] == [b"first"]
        assert await client.hgetall(keys.counters) == {
            b"submitted": b"1",
            b"posted": b"1",
            b"duplicates": b"1",
        }
        assert (await client.xpending(stream, GROUP))["pending"] == 0
        assert await client.xlen(stream) == 0  # acknowledged and deleted: Redis stays small
    finally:
        await client.aclose()


async def test_a_reply_gets_through_when_redis_lost_the_group(redis_url: str, prefix: str) -> None:
    keys, client = QueueKeys(prefix), connect(redis_url)
    try:  # a restart without persistence: no stream, no group, no marker
        assert await _finish(client, keys, "c:9", b"1-1", b"reply") == 1
        assert len(await client.xrange(keys.replies("c"))) == 1
    finally:
        await client.aclose()


async def test_touch_keeps_claims_and_tells_which_were_taken_over_or_are_gone(
    redis_url: str, prefix: str
) -> None:
    keys, client = QueueKeys(prefix), connect(redis_url)
    stream = keys.stream("compose")
    touch = client.register_script(TOUCH)
    try:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        await _queued(client, keys, "c:1")
        [[_, [(entry, _fields)]]] = await client.xreadgroup(GROUP, "a", {stream: ">"})
        await asyncio.sleep(0.3)
        assert await touch(keys=[stream], args=[GROUP, "a", entry]) == [[], []]
        [pending] = await client.xpending_range(stream, GROUP, min=entry, max=entry, count=1)
        assert pending["time_since_delivered"] < 300  # refreshed
        assert pending["times_delivered"] == 1  # and no delivery counted
        _, claimed, _ = await client.xautoclaim(stream, GROUP, "b", 0, "0-0")
        assert [e for e, _ in claimed] == [entry]
        assert await touch(keys=[stream], args=[GROUP, "a", entry]) == [[entry], []]
        await client.xack(stream, GROUP, entry)
        assert await touch(keys=[stream], args=[GROUP, "b", entry]) == [[], [entry]]
    finally:
        await client.aclose()


async def test_with_no_worker_at_all_the_member_is_told_within_seconds(
    redis_url: str, prefix: str, inspect: redis.Redis
) -> None:
    async with queue_client(redis_url, prefix=prefix) as engine:
        with pytest.raises(EngineUnavailable, match="no music engine worker is running"):
            # Within the workers' heartbeat ttl (5 s) and a check, not a time-out.
            await asyncio.wait_for(engine.compose(ComposeRequest(bars=1)), 30)
        # A worker that starts later drops the job instead of running it for nobody.
        cancelled = [k for k in inspect.scan_iter(f"{prefix}:cancel:*")]
        assert len(cancelled) == 1


async def test_stats_count_a_worker_whose_engine_is_still_starting(
    redis_url: str, prefix: str
) -> None:
    keys = QueueKeys(prefix)
    async with queue_client(redis_url, prefix=prefix) as engine:
        client = connect(redis_url)
        try:  # what a worker writes before its engine serves: no figures yet
            await client.register_script(HEARTBEAT)(
                keys=[keys.workers, keys.worker("w")],
                args=["w", 15_000, "state", "starting", "stats", b""],
            )
        finally:
            await client.aclose()
        stats = await engine.stats()
        assert stats.max_rows == 0 and stats.device == "queue: 1 workers (none)"


async def test_a_client_whose_redis_does_not_answer_cannot_start() -> None:
    engine = queue_client(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(EngineUnavailable, match="could not start.*did not answer"):
        await engine.start()
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://u:pw@h:6379/0", "must be a redis://, rediss:// or unix:// URL"),
        (f"redis://127.0.0.1:{free_port()}/0", "cannot reach Redis"),
    ],
)
def test_a_worker_without_a_usable_redis_says_why_in_one_line(url: str, said: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine", "worker", "--queue-url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert said in done.stderr and "Traceback" not in done.stderr and "pw" not in done.stderr


async def test_the_bot_uses_the_queue_when_told_to(redis_url: str, tmp_path: Path) -> None:
    from bot.app import open_engine
    from bot.config import Settings

    async with open_engine(Settings(data_dir=tmp_path, queue_url=redis_url)) as engine:
        assert isinstance(engine, EngineClient) and engine.engine_info.device == "queue"
