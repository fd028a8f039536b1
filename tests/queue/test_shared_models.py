"""Servers' fine-tuned versions shared by the queue's workers through Redis: real redis-server,
real `python -m engine worker` processes, each with a data dir of its own (no shared disk),
and the shipped checkpoint standing in for a server's version where no run is needed."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis

from engine.api.client import BadRequest, ComposeRequest, FinetuneRequest
from engine.api.queue_keys import QueueKeys, connect
from engine.api.queue_transport import queue_client
from engine.model.checkpoint import BASE_CHECKPOINT
from engine.queue.shared_models import CHUNK_BYTES, SharedModels
from engine.serving.model_store import ModelStore

pytestmark = [
    pytest.mark.redis,
    pytest.mark.timeout(900),
    pytest.mark.asyncio(loop_scope="session"),
]

GUILD = 4242


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest_asyncio.fixture
async def machine_a(redis_url: str, prefix: str, tmp_path: Path) -> AsyncIterator[SharedModels]:
    """The shared store as one machine sees it, with its own data dir."""
    client = connect(redis_url)
    yield SharedModels(client, QueueKeys(prefix), ModelStore(tmp_path / "machine-a", keep_recent=1))
    await client.aclose()


def save_version(models: SharedModels, model: str, *, accepted: bool = True) -> Path:
    """A version on this machine's disk, as a fine-tune leaves it (checkpoint and record)."""
    path = models.local.path_of(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(BASE_CHECKPOINT, path)
    path.with_suffix(".json").write_text(json.dumps({"accepted": accepted}))
    return path


async def test_a_version_published_on_one_machine_is_fetched_whole_on_another(
    machine_a: SharedModels, redis_url: str, prefix: str, tmp_path: Path, inspect: redis.Redis
) -> None:
    saved = save_version(machine_a, f"{GUILD}/v1")
    manifest = await machine_a.publish(f"{GUILD}/v1", accepted=True)
    # Cut in chunks no bigger than CHUNK_BYTES, with a checksum of the whole.
    assert manifest.chunks == -(-saved.stat().st_size // CHUNK_BYTES) > 1
    assert inspect.hlen(f"{prefix}:model:{GUILD}/v1") == manifest.chunks
    assert manifest.sha256 == sha256(saved)

    client = connect(redis_url)
    try:
        machine_b = SharedModels(client, QueueKeys(prefix), ModelStore(tmp_path / "machine-b"))
        fetched = await machine_b.ensure_local(f"{GUILD}/v1", guild_id=GUILD)
        assert fetched == tmp_path.resolve() / "machine-b" / "models" / str(GUILD) / "v1.pt"
        assert sha256(fetched) == manifest.sha256
        assert json.loads(fetched.with_suffix(".json").read_text()) == {"accepted": True}
        with pytest.raises(BadRequest, match="own model versions"):
            await machine_b.ensure_local(f"{GUILD}/v1", guild_id=GUILD + 1)

        # A damaged chunk, then a missing one: refused with a reason, nothing written.
        save_version(machine_a, f"{GUILD}/v2")
        await machine_a.publish(f"{GUILD}/v2", accepted=True)
        inspect.hset(f"{prefix}:model:{GUILD}/v2", "3", b"not the bytes that were published")
        with pytest.raises(BadRequest, match="v2 is damaged in the model store"):
            await machine_b.ensure_local(f"{GUILD}/v2", guild_id=GUILD)
        inspect.hdel(f"{prefix}:model:{GUILD}/v2", "3")
        with pytest.raises(BadRequest, match=r"v2 is incomplete in the model store \(1 of"):
            await machine_b.ensure_local(f"{GUILD}/v2", guild_id=GUILD)
        assert not machine_b.local.path_of(f"{GUILD}/v2").exists()

        # The retention rule (one recent accepted version here) runs over the shared versions:
        # the pruned ones leave Redis, and each machine's copy goes at its next use.
        save_version(machine_a, f"{GUILD}/v3")
        await machine_a.publish(f"{GUILD}/v3", accepted=True)
        assert await machine_a.retain(GUILD, {f"{GUILD}/v3"}) == [f"{GUILD}/v1", f"{GUILD}/v2"]
        assert inspect.hkeys(f"{prefix}:models:{GUILD}") == [b"v3"]
        assert not inspect.exists(f"{prefix}:model:{GUILD}/v1", f"{prefix}:model:{GUILD}/v2")
        assert not machine_a.local.path_of(f"{GUILD}/v1").exists()
        with pytest.raises(BadRequest, match="not in the model store"):
            await machine_b.ensure_local(f"{GUILD}/v1", guild_id=GUILD)
        assert not fetched.exists()
    finally:
        await client.aclose()


async def test_a_tuned_version_serves_on_a_worker_with_an_empty_data_dir_and_pruning_removes_it(
    machine_a: SharedModels,
    redis_url: str,
    prefix: str,
    start_workers,
    engine_data_dir: Path,
    chorale_files: list[Path],
    inspect: redis.Redis,
) -> None:
    old = f"{GUILD}/old"
    save_version(machine_a, old)
    await machine_a.publish(old, accepted=True)
    # The trainer has the folk corpus (replay and the gate need it); one recent version kept.
    keep_one = {"MOTIF_FINETUNE_KEEP_VERSIONS": "1"}
    [trainer] = start_workers(
        redis_url, prefix, ["trainer"], data_dir=engine_data_dir, env=keep_one
    )
    async with queue_client(redis_url, prefix=prefix) as engine:
        composed = await engine.compose(
            ComposeRequest(bars=2, candidates=1, seed=1, guild_id=GUILD, model=old)
        )
        assert composed.candidates[0].notes > 0
        assert "fetched model 4242/old" in trainer.log_text()

        tuned = await engine.finetune(
            FinetuneRequest(guild_id=GUILD, pieces=[p.read_bytes() for p in chorale_files], steps=4)
        )
        assert tuned.accepted, tuned.reason
        # Published before the reply; the older version pruned from Redis and the trainer.
        assert tuned.pruned == [old]
        name = tuned.model.removeprefix(f"{GUILD}/")
        assert inspect.hkeys(f"{prefix}:models:{GUILD}") == [name.encode()]
        assert not inspect.exists(f"{prefix}:model:{old}")
        assert not (engine_data_dir / "models" / str(GUILD) / "old.pt").exists()
        trained = engine_data_dir / "models" / str(GUILD) / f"{name}.pt"

        # Another machine: an empty data dir, and the trainer gone.
        [fresh] = start_workers(redis_url, prefix, ["fresh"], env=keep_one)
        assert not (fresh.data_dir / "models").exists()
        assert trainer.stop() == 0
        composed = await engine.compose(
            ComposeRequest(bars=2, candidates=1, seed=2, guild_id=GUILD, model=tuned.model)
        )
        assert composed.candidates[0].notes > 0
        copy = fresh.data_dir / "models" / str(GUILD) / f"{name}.pt"
        assert sha256(copy) == sha256(trained)
        with pytest.raises(BadRequest, match="4242/old is not in the model store"):
            await engine.compose(ComposeRequest(bars=1, candidates=1, guild_id=GUILD, model=old))

        # A damaged copy in Redis is refused to the member, and the worker lives on.
        damaged = f"{GUILD}/damaged"
        save_version(machine_a, damaged)
        await machine_a.publish(damaged, accepted=True)
        inspect.hset(f"{prefix}:model:{damaged}", "0", b"garbage")
        with pytest.raises(BadRequest, match="damaged in the model store"):
            await engine.compose(
                ComposeRequest(bars=1, candidates=1, guild_id=GUILD, model=damaged)
            )
        composed = await engine.compose(
            ComposeRequest(bars=1, candidates=1, seed=3, guild_id=GUILD, model=tuned.model)
        )
        assert composed.candidates[0].notes > 0
