"""Fine-tuning through the engine process, as the bot asks for it: progress, the result and
its checkpoint serving compositions, one run per server, cancelling, pruning, and paths that
belong to another server."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from engine.api.client import (
    BadRequest,
    ComposeRequest,
    EngineClient,
    FinetuneProgress,
    FinetuneRequest,
    VotedPair,
)
from tests.engine.test_server import CHECKPOINT

session_loop = pytest.mark.asyncio(loop_scope="session")
GUILD, OTHER_GUILD = 111, 222


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(engine_data_dir) -> AsyncIterator[EngineClient]:
    async with EngineClient.local(
        device="cpu", max_rows=8, env={"MOTIF_DATA_DIR": str(engine_data_dir)}
    ) as client:
        yield client


@pytest.fixture(scope="module")
def pieces(chorale_files) -> list[bytes]:
    return [p.read_bytes() for p in chorale_files]


async def wait_for_no_training(engine: EngineClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while (await engine.stats()).training_jobs:
        assert time.monotonic() < deadline, "the fine-tune child is still running"
        await asyncio.sleep(0.2)


@session_loop
async def test_a_run_reports_progress_and_its_checkpoint_serves(engine, pieces, engine_data_dir):
    models = engine_data_dir / "models" / str(GUILD)
    models.mkdir(parents=True, exist_ok=True)
    # Older versions of the server, newest last: the engine keeps the newest accepted ones
    # (MOTIF_FINETUNE_KEEP_VERSIONS, 3 with the new one) and the one the run starts from.
    for age, name in ((400, "stale"), (300, "older"), (200, "kept"), (100, "recent")):
        (models / f"{name}.pt").write_bytes(b"an earlier version")
        os.utime(models / f"{name}.pt", (time.time() - age,) * 2)
    shutil.copy(CHECKPOINT, models / "active.pt")  # rolled back to: the oldest of all
    os.utime(models / "active.pt", (time.time() - 500,) * 2)
    events: list[FinetuneProgress] = []
    result = await engine.finetune(
        FinetuneRequest(guild_id=GUILD, pieces=pieces, steps=4, start_from=f"{GUILD}/active"),
        on_progress=events.append,
    )

    assert result.accepted, result.reason
    assert {
        "server_nll_before",
        "server_nll_after",
        "base_nll_reference",
        "base_nll_after",
    } <= result.metrics.keys()
    # The version is named by an id; its file is the engine's, under the server's folder.
    name = result.model.removeprefix(f"{GUILD}/")
    assert result.model == f"{GUILD}/{name}" and (models / f"{name}.pt").is_file()
    assert events and all(isinstance(e, FinetuneProgress) for e in events)
    assert events[-1].percent == 100.0
    # Pruned by the engine's rule, and the bot told which; the working copy of the data too.
    assert result.pruned == [f"{GUILD}/older", f"{GUILD}/stale"]
    assert not (models / "stale.pt").exists() and not (models / "older.pt").exists()
    assert all((models / f"{name}.pt").exists() for name in ("kept", "recent", "active"))
    assert not any((engine_data_dir / "finetune" / str(GUILD)).iterdir())

    composed = await engine.compose(
        ComposeRequest(bars=2, candidates=1, seed=1, guild_id=GUILD, model=result.model)
    )
    assert composed.candidates[0].notes > 0
    assert result.model in (await engine.stats()).models
    # Another server cannot compose with it, nor name a file by path.
    for model, guild in ((result.model, OTHER_GUILD), (str(models / f"{name}.pt"), GUILD)):
        with pytest.raises(BadRequest, match="own model versions|<server id>/<name>"):
            await engine.compose(ComposeRequest(bars=1, candidates=1, guild_id=guild, model=model))
    with pytest.raises(BadRequest, match="not in this engine"):
        await engine.compose(
            ComposeRequest(bars=1, candidates=1, guild_id=GUILD, model=f"{GUILD}/stale")
        )


@session_loop
async def test_preference_pairs_reach_the_preference_step(engine, pieces):
    pairs = [VotedPair(chosen=pieces[i % 8], rejected=pieces[(i + 3) % 8]) for i in range(8)]
    result = await engine.finetune(
        FinetuneRequest(guild_id=OTHER_GUILD, pieces=pieces, pairs=pairs, steps=2)
    )
    assert result.metrics["preference_pairs"] == 8
    assert result.metrics["preference_steps"] >= 1
    assert 0 <= result.metrics["preference_accuracy_after"] <= 1


@session_loop
async def test_compositions_flow_while_a_server_trains_and_cancelling_stops_it(
    engine, pieces, engine_data_dir
):
    first = asyncio.create_task(
        engine.finetune(FinetuneRequest(guild_id=GUILD, pieces=pieces, steps=500))
    )
    deadline = time.monotonic() + 30
    while not (await engine.stats()).training_jobs:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    with pytest.raises(BadRequest, match="already being fine-tuned"):
        await engine.finetune(FinetuneRequest(guild_id=GUILD, pieces=pieces, steps=1))
    composed = await engine.compose(
        ComposeRequest(bars=2, candidates=2, seed=3, guild_id=OTHER_GUILD)
    )
    assert all(c.notes > 0 for c in composed.candidates)
    assert (await engine.stats()).training_jobs == 1  # still training meanwhile
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await wait_for_no_training(engine)
    assert not any((engine_data_dir / "finetune" / str(GUILD)).iterdir())  # its MIDI is gone


@session_loop
async def test_a_server_cannot_start_from_another_servers_checkpoint(
    engine, pieces, engine_data_dir
):
    theirs = engine_data_dir / "models" / "333"
    theirs.mkdir(parents=True, exist_ok=True)
    victim = theirs / "their-version.pt"
    victim.write_bytes(b"another server's model")
    with pytest.raises(BadRequest, match="own model versions"):
        await engine.finetune(
            FinetuneRequest(guild_id=GUILD, pieces=pieces, start_from="333/their-version", steps=1)
        )
    with pytest.raises(BadRequest, match=r"<server id>/<name>"):  # a path is no version id
        await engine.finetune(
            FinetuneRequest(guild_id=GUILD, pieces=pieces, start_from=str(victim), steps=1)
        )
    assert (await engine.stats()).training_jobs == 0


@session_loop
async def test_too_little_data_is_a_bad_request_with_the_reason(engine, pieces):
    with pytest.raises(BadRequest, match="at least 3 different pieces"):
        await engine.finetune(FinetuneRequest(guild_id=GUILD, pieces=pieces[:2], steps=1))


@session_loop
async def test_malformed_finetune_requests_are_refused(engine):
    with pytest.raises(BadRequest):
        await engine.finetune(FinetuneRequest(guild_id=GUILD, pieces=[b"x"] * 3, steps=0))
