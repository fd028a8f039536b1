"""Fixtures for the job queue's tests: a real redis-server on loopback (MOTIF_TEST_REDIS_URL
when .ci/redis.sh started one, else one of our own for the session), real workers.

Every test has its own key prefix, so tests never see each other's jobs on a shared server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.queue.processes import REDIS_SERVER, RedisServer, WorkerProcess

REDIS_ENV = "MOTIF_TEST_REDIS_URL"
REDIS_SKIP_REASON = (
    "redis-server is not installed and MOTIF_TEST_REDIS_URL is not set: the "
    "job queue tests did NOT run. Install it with: make system"
)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get(REDIS_ENV, "").strip()
    if url:
        yield url
        return
    if REDIS_SERVER is None:
        pytest.skip(REDIS_SKIP_REASON)
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def inspect(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client to look at what is in Redis."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, which it may stop and start again."""
    if REDIS_SERVER is None:
        pytest.skip(REDIS_SKIP_REASON)
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


StartWorkers = Callable[..., list[WorkerProcess]]


def worker_starter(log_dir: Path, started: list[WorkerProcess]) -> StartWorkers:
    def start(url: str, prefix: str, names: list[str], **options: object) -> list[WorkerProcess]:
        workers = [
            WorkerProcess(url, prefix, name, log_dir, **options)  # type: ignore[arg-type]
            for name in names
        ]
        started.extend(workers)
        for worker in workers:
            worker.wait_serving()
        return workers

    return start


@pytest.fixture
def start_workers(tmp_path: Path) -> Iterator[StartWorkers]:
    """Start `python -m engine worker` processes and wait until they serve; stopped (and
    their engines made sure gone) after the test."""
    started: list[WorkerProcess] = []
    yield worker_starter(tmp_path, started)
    for worker in started:
        worker.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if any(REDIS_SKIP_REASON in str(getattr(report, "longrepr", "")) for report in skipped):
        terminalreporter.write_sep("!", "job queue tests were SKIPPED", red=True)
        terminalreporter.write_line(REDIS_SKIP_REASON, red=True)
