"""engine.client against the real engine process running the shipped model."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from symusic import Score

from engine.client import (
    BadRequest,
    BadSeed,
    ComposeRequest,
    Composing,
    EngineClient,
    EngineUnavailable,
    Queued,
    Rendering,
)
from tests.engine.test_server import CHECKPOINT

# One event loop for the module: the shared engine fixture lives on it.
session_loop = pytest.mark.asyncio(loop_scope="session")

FAST_RESTARTS = {"restart_delays": (0.2, 0.5, 1.0)}


def local(**options) -> EngineClient:
    return EngineClient.local(checkpoint=CHECKPOINT, **FAST_RESTARTS | options)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine() -> AsyncIterator[EngineClient]:
    async with local() as client:
        yield client


def check(result, candidates: int) -> None:
    assert len(result.candidates) == candidates
    for cand in result.candidates:
        assert Score.from_midi(cand.midi).note_num() == cand.notes > 0
        assert cand.audio[:4] == b"OggS" and cand.seconds > 1.0
    assert result.pianoroll[:4] == b"\x89PNG"
    assert 0.0 <= result.invalid_rate < 1.0
    assert result.timings["total"] > result.timings["sample"] > 0


def test_client_does_not_import_torch():
    code = "import engine.client, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_request_defaults_match_the_composer():
    from engine.composer import ComposeParams

    params = {f.name: f.default for f in dataclasses.fields(ComposeParams)}
    request = {f.name: f.default for f in dataclasses.fields(ComposeRequest)}
    assert {k: request[k] for k in params} == params


@session_loop
async def test_eight_concurrent_compositions(engine, examples):
    seeds = [None, (examples / "motif.mid").read_bytes(),
             (examples / "waltz-violin.mid").read_bytes(), (examples / "band.mid").read_bytes()]
    events: dict[int, list] = {i: [] for i in range(8)}
    requests = [ComposeRequest(seed_midi=seeds[i % 4], bars=4, candidates=1 + i % 4,
                               temperature=0.9, seed=i, guild_id=i % 3) for i in range(8)]
    results = await asyncio.gather(*(
        engine.compose(r, on_progress=events[i].append) for i, r in enumerate(requests)))
    for i, (request, result) in enumerate(zip(requests, results, strict=True)):
        check(result, request.candidates)
        assert isinstance(events[i][-1], Rendering)
        assert all(isinstance(e, Queued | Composing | Rendering) for e in events[i])
    stats = await engine.stats()
    assert stats.jobs == stats.rendering_jobs == stats.active_rows == 0


@session_loop
async def test_bad_seed_and_bad_options_raise_with_their_message(engine):
    with pytest.raises(BadSeed, match="not a MIDI file"):
        await engine.compose(ComposeRequest(seed_midi=b"hello, this is not MIDI", bars=4))
    with pytest.raises(BadRequest, match=r"bars must be within 1 and 64 \(received 100\)"):
        await engine.compose(ComposeRequest(bars=100))
    check(await engine.compose(ComposeRequest(bars=1, candidates=1, seed=0)), 1)


@session_loop
async def test_render_a_whole_midi_file(engine, examples):
    audio = await engine.render((examples / "band.mid").read_bytes())
    assert audio[:4] == b"OggS"
    with pytest.raises(BadSeed, match="no notes"):
        await engine.render(Score(480).dumps_midi())


@session_loop
async def test_cancelled_request_frees_its_batch_rows(engine):
    started = asyncio.Event()

    def on_progress(event) -> None:
        if isinstance(event, Composing):
            started.set()

    task = asyncio.create_task(engine.compose(ComposeRequest(bars=64, candidates=4, seed=0),
                                              on_progress=on_progress))
    await asyncio.wait_for(started.wait(), 30)
    assert (await engine.stats()).active_rows == 4
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 5
    while (stats := await engine.stats()).active_rows and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert stats.active_rows == 0 and stats.jobs == 0, stats


async def compose_and_kill(client: EngineClient, kills: int) -> tuple[object, float]:
    """Compose, killing the engine (-9) the first `kills` times the job starts decoding."""
    killed: list[int] = []

    def on_progress(event) -> None:
        pid = client.engine_info["pid"]
        if isinstance(event, Composing) and len(killed) < kills and pid not in killed:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    started = time.monotonic()
    try:
        outcome: object = await asyncio.wait_for(client.compose(
            ComposeRequest(bars=16, candidates=4, seed=5), on_progress=on_progress), 60)
    except EngineUnavailable as exc:
        outcome = exc
    assert len(killed) == kills
    return outcome, time.monotonic() - started


@session_loop
async def test_kill_9_restarts_and_retries_the_job_once():
    async with local() as client:
        first_pid = client.engine_info["pid"]
        outcome, seconds = await compose_and_kill(client, kills=1)
        assert seconds < 30
        check(outcome, 4)  # retried on the new engine
        assert client.engine_info["pid"] != first_pid
        outcome, seconds = await compose_and_kill(client, kills=2)
        assert seconds < 30
        assert isinstance(outcome, EngineUnavailable) and "crashed twice" in str(outcome)
        check(await client.compose(ComposeRequest(bars=1, candidates=1, seed=0)), 1)


@session_loop
async def test_close_finishes_jobs_in_flight_then_refuses_new_ones():
    client = local()
    await client.start()
    job = asyncio.create_task(client.compose(ComposeRequest(bars=4, candidates=2, seed=1)))
    await asyncio.sleep(0.2)  # sent
    await client.aclose()
    check(await job, 2)
    with pytest.raises(EngineUnavailable, match="shutting down"):
        await client.compose(ComposeRequest(bars=1))


@session_loop
async def test_engine_that_cannot_start_is_unavailable(tmp_path):
    client = EngineClient.local(checkpoint=tmp_path / "missing.pt")
    with pytest.raises(EngineUnavailable, match="could not start"):
        await client.start()
