"""engine.api.client against the real engine process running the shipped model."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import soundfile
from PIL import Image
from symusic import Note, Score, Tempo, Track

from engine.api.client import (
    BadRequest,
    BadSeed,
    ComposeRequest,
    Decoding,
    EngineClient,
    EngineRestarting,
    EngineUnavailable,
    Queued,
    Rendering,
    RenderRequest,
    RenderResult,
)
from engine.api.limits import DEFAULT_MAX_RENDER_SECONDS
from engine.api.schema import RenderCommand
from engine.audio.pianoroll import ROW_PX, SEED_STRIP_PX
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


def check(result, candidates: int, *, seeded: bool = False) -> None:
    assert len(result.candidates) == candidates
    for cand in result.candidates:
        assert Score.from_midi(cand.midi).note_num() == cand.notes > 0
        assert cand.audio[:4] == b"OggS" and cand.seconds > 1.0
    assert result.pianoroll[:4] == b"\x89PNG"
    # A row per candidate, and the seed's strip above them: the engine's seed reader child
    # hands the seed on for it.
    with Image.open(io.BytesIO(result.pianoroll)) as image:
        assert image.height == ROW_PX * candidates + (SEED_STRIP_PX if seeded else 0)
    assert 0.0 <= result.invalid_rate < 1.0
    assert result.timings["total"] > result.timings["sample"] > 0


def test_client_does_not_import_torch():
    # `engine.client` is the design's contract name; it hands on engine.api.client's names.
    code = (
        "import engine.client, engine.api.client, sys\n"
        "assert engine.client.EngineClient is engine.api.client.EngineClient\n"
        "from engine.client import BadSeed, ComposeRequest, ComposeResult, EngineUnavailable\n"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_composer_takes_the_request_the_client_sends():
    # One shape from the bot to the sampler: no second options class to drift apart.
    from engine.core import composer

    assert composer.ComposeRequest is ComposeRequest


@session_loop
async def test_eight_concurrent_compositions(engine, examples):
    seeds = [
        None,
        (examples / "motif.mid").read_bytes(),
        (examples / "waltz-violin.mid").read_bytes(),
        (examples / "band.mid").read_bytes(),
    ]
    events: dict[int, list] = {i: [] for i in range(8)}
    requests = [
        ComposeRequest(
            seed_midi=seeds[i % 4],
            bars=4,
            candidates=1 + i % 4,
            temperature=0.9,
            seed=i,
            guild_id=i % 3,
        )
        for i in range(8)
    ]
    results = await asyncio.gather(
        *(engine.compose(r, on_progress=events[i].append) for i, r in enumerate(requests))
    )
    for i, (request, result) in enumerate(zip(requests, results, strict=True)):
        check(result, request.candidates, seeded=request.seed_midi is not None)
        assert [c.bars for c in result.candidates] == [request.bars] * request.candidates
        assert isinstance(events[i][-1], Rendering)
        assert all(isinstance(e, Queued | Decoding | Rendering) for e in events[i])
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
async def test_a_request_over_the_work_limits_is_refused_before_any_work(engine):
    from tests.engine.test_workload import SLOW, refusal

    with pytest.raises(BadRequest) as error:
        await engine.compose(ComposeRequest(seed_midi=SLOW, bars=64, seed=1))
    assert str(error.value) == refusal(SLOW, bars=64)
    assert str(error.value).startswith("at 20 bpm, 64 bars of 4/2 would last 26 minutes")
    stats = await engine.stats()  # nothing left decoding or rendering
    assert stats.jobs == stats.rendering_jobs == stats.active_rows == 0


@session_loop
async def test_render_a_whole_midi_file(engine, examples):
    rendered = await engine.render((examples / "band.mid").read_bytes(), guild_id=5)
    assert rendered.audio[:4] == b"OggS" and rendered.cut_at is None
    assert rendered.seconds == pytest.approx(rendered.full_seconds, abs=0.01)
    assert rendered.pianoroll is None  # drawn only when asked
    with pytest.raises(BadRequest, match="no notes"):
        await engine.render(Score(480).dumps_midi())


@session_loop
async def test_render_draws_the_whole_file_when_asked(engine, examples, tmp_path):
    # A jam's piece so far is posted with its piano roll.
    rendered = await engine.render((examples / "band.mid").read_bytes(), pianoroll=True)
    assert rendered.audio[:4] == b"OggS"
    assert rendered.pianoroll is not None and rendered.pianoroll.startswith(b"\x89PNG")
    (tmp_path / "band.png").write_bytes(rendered.pianoroll)
    # A client that does not check what it sends (msgspec checks types when decoding only).
    broken = RenderRequest((examples / "band.mid").read_bytes(), pianoroll="yes")  # type: ignore
    with pytest.raises(BadRequest, match=r"pianoroll must be true or false \(received 'yes'\)"):
        await engine._run(RenderCommand(999, broken), RenderResult, None)


def long_piece(minutes: float) -> bytes:
    """A piano line at 120 bpm, a note every beat, lasting `minutes`."""
    score = Score(480)
    score.tempos.append(Tempo(0, 120.0))
    track = Track("piano", 0, False)
    for beat in range(int(minutes * 120)):
        track.notes.append(Note(beat * 480, 480, 48 + beat % 24, 80))
    score.tracks.append(track)
    return score.dumps_midi()


@session_loop
async def test_a_midi_longer_than_a_render_job_makes_is_cut_and_says_so(engine):
    # 26 minutes: refused outright before ("audio is made for pieces of up to 10 minutes"),
    # holding ~600 MB of PCM on the way; now the engine makes its first 5 minutes.
    rendered = await engine.render(long_piece(26))
    assert rendered.cut_for == "length" and rendered.cut_at == DEFAULT_MAX_RENDER_SECONDS
    assert rendered.full_seconds == pytest.approx(26 * 60 + 1, abs=1)
    assert soundfile.info(io.BytesIO(rendered.audio)).duration == pytest.approx(
        DEFAULT_MAX_RENDER_SECONDS + 1, abs=0.1
    )  # the cut, then the release tail
    shorter = await engine.render(long_piece(26), max_seconds=30)
    assert shorter.cut_at == 30 and shorter.seconds == pytest.approx(31, abs=0.1)
    # A tight upload limit shortens it further, and says that is why.
    fitted = await engine.render(long_piece(26), max_audio_bytes=200_000)
    assert len(fitted.audio) <= 200_000 and fitted.quality_lowered
    assert fitted.cut_for == "size" and fitted.cut_at < DEFAULT_MAX_RENDER_SECONDS
    with pytest.raises(
        BadRequest,
        match=r"max_seconds must be above 0 and at most 300 s "
        r"\(received 301\)",
    ):
        await engine.render(long_piece(1), max_seconds=301)


@session_loop
async def test_an_engine_takes_its_work_limits_from_the_operators_variables(examples):
    # Lowered limits reach the engine's server and its seed reader child.
    env = {
        "MOTIF_MAX_RENDER_SECONDS": "20",
        "MOTIF_MAX_SEED_NOTES": "3",
        "MOTIF_MAX_CLIP_SECONDS": "20",
    }
    async with local(env=env) as limited:
        rendered = await limited.render(long_piece(1))
        assert rendered.cut_for == "length" and rendered.cut_at == 20
        with pytest.raises(BadRequest, match=r"at most 20 s \(received 30\)"):
            await limited.render(long_piece(1), max_seconds=30)
        with pytest.raises(BadSeed, match="seeds may have at most 3$"):
            await limited.compose(
                ComposeRequest(seed_midi=(examples / "motif.mid").read_bytes(), bars=1)
            )
        with pytest.raises(BadRequest, match="a clip may last at most 20 seconds"):
            await limited.compose(ComposeRequest(bars=16, tempo=120.0))


@session_loop
async def test_stats_of_a_hung_engine_is_engine_unavailable_with_a_reason(engine):
    pid = engine.engine_info.pid
    os.kill(pid, signal.SIGSTOP)  # hangs it: alive, answering nothing
    try:
        with pytest.raises(EngineUnavailable, match="did not answer within 0.5 s"):
            await engine.stats(timeout=0.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (await engine.stats()).pid == pid


@session_loop
async def test_cancelled_request_frees_its_batch_rows(engine):
    started = asyncio.Event()

    def on_progress(event) -> None:
        if isinstance(event, Decoding):
            started.set()

    task = asyncio.create_task(
        engine.compose(ComposeRequest(bars=64, candidates=4, seed=0), on_progress=on_progress)
    )
    await asyncio.wait_for(started.wait(), 30)
    assert (await engine.stats()).active_rows == 4
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = time.monotonic() + 5
    while (stats := await engine.stats()).active_rows and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert stats.active_rows == 0 and stats.jobs == 0, stats


async def compose_and_kill(
    client: EngineClient, kills: int, events: list | None = None
) -> tuple[object, float]:
    """Compose, killing the engine (-9) the first `kills` times the job starts decoding;
    the progress events seen go to `events`."""
    killed: list[int] = []

    def on_progress(event) -> None:
        if events is not None:
            events.append(event)
        pid = client.engine_info.pid
        if isinstance(event, Decoding) and len(killed) < kills and pid not in killed:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    started = time.monotonic()
    try:
        outcome: object = await asyncio.wait_for(
            client.compose(ComposeRequest(bars=16, candidates=4, seed=5), on_progress=on_progress),
            60,
        )
    except EngineUnavailable as exc:
        outcome = exc
    assert len(killed) == kills
    return outcome, time.monotonic() - started


@session_loop
async def test_kill_9_restarts_and_retries_the_job_once():
    async with local() as client:
        first_pid = client.engine_info.pid
        events: list = []
        outcome, seconds = await compose_and_kill(client, kills=1, events=events)
        assert seconds < 30
        check(outcome, 4)  # retried on the new engine
        # While the new engine started, the job heard why its progress stood still, then
        # progressed again from the start.
        kinds = [type(e) for e in events]
        assert EngineRestarting in kinds
        assert Decoding in kinds[kinds.index(EngineRestarting) :]
        assert client.engine_info.pid != first_pid
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
