"""The engine process spoken to in raw messages (plain maps, as MessagePack frames): what any
client may send it, and what it answers, as engine.api.schema writes it."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from symusic import Score

from engine.api.child_env import child_environment
from engine.api.transport import SubprocessTransport
from engine.model.checkpoint import BASE_CHECKPOINT

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Every engine in these tests runs the shipped model, as members get it.
CHECKPOINT = BASE_CHECKPOINT
SERVE = [sys.executable, "-m", "engine", "serve", "--checkpoint", str(CHECKPOINT)]
STARTUP_TIMEOUT = 120.0


class RawEngine:
    """An engine's transport that sends any value and reads replies as plain maps."""

    def __init__(self, transport: SubprocessTransport) -> None:
        self.transport = transport

    async def send(self, message: object) -> None:
        await self.transport.send(msgspec.msgpack.encode(message))

    async def receive(self) -> dict[str, Any]:
        return msgspec.msgpack.decode(await self.transport.receive())

    def __getattr__(self, name: str) -> Any:  # open, close, wait_exit, describe_exit
        return getattr(self.transport, name)


async def receive_until(
    transport: RawEngine, predicate, timeout: float = 60.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read messages until one matches; returns it and every message read before it."""
    import asyncio

    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        message = await asyncio.wait_for(transport.receive(), deadline - time.monotonic())
        if predicate(message):
            return message, seen
        seen.append(message)


def reply_to(job_id: int, *types: str):
    return lambda m: m.get("id") == job_id and m.get("type") in types


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The engine's own data dir, where it keeps the servers' model versions."""
    return tmp_path_factory.mktemp("served-data")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def engine(data_dir: Path) -> AsyncIterator[RawEngine]:
    transport = RawEngine(
        SubprocessTransport(
            [*SERVE, "--max-rows", "8"], env=child_environment({"MOTIF_DATA_DIR": str(data_dir)})
        )
    )
    await transport.open()
    ready, _ = await receive_until(transport, lambda m: True, STARTUP_TIMEOUT)
    assert ready["type"] == "ready" and ready["model"] == str(CHECKPOINT.resolve())
    yield transport
    await transport.close(timeout=10.0)
    assert transport.describe_exit() == "exited with code 0"


async def ping(engine: RawEngine, job_id: int) -> dict[str, Any]:
    await engine.send({"type": "ping", "id": job_id})
    pong, _ = await receive_until(engine, reply_to(job_id, "pong"))
    return pong["stats"]


@pytest.mark.parametrize(
    "message,reason",
    [
        ([1, 2, 3], "must be a map"),
        ({"type": "compose", "request": {}}, "integer id"),
        ({"type": "compose", "id": "7", "request": {}}, "integer id"),
        ({"type": "dance", "id": 11}, "unknown message type"),
        ({"type": ["compose"], "id": 9}, "unknown message type"),
        ({1: 2, "id": 8, "type": "ping "}, "unknown message type"),
        ({"type": "render", "id": 10, "request": {"midi": None}}, "midi must be bytes"),
        ({"type": "render", "id": 22, "request": {}}, "a render request needs midi"),
        (
            {"type": "render", "id": 21, "request": {"midi": b"MThd", "guild_id": "7"}},
            "guild_id must be int or nothing (received '7')",
        ),
        ({"type": "compose", "id": 12, "request": "bars=4"}, "a compose request must be a map"),
        (
            {"type": "compose", "id": 13, "request": {"bars": "four"}},
            "bars must be int (received 'four')",
        ),
        (
            {"type": "compose", "id": 14, "request": {"bars": True}},
            "bars must be int (received True)",
        ),
        ({"type": "compose", "id": 15, "request": {"colour": "blue"}}, "unknown compose options"),
        (
            {"type": "compose", "id": 16, "request": {"bars": 0}},
            "bars must be within 1 and 64 (received 0)",
        ),
        (
            {"type": "compose", "id": 17, "request": {"candidates": 9}},
            "candidates must be within 1 and 4 (received 9)",
        ),
        (
            {"type": "compose", "id": 18, "request": {"temperature": 50}},
            "temperature must be within 0.5 and 1.5 (received 50)",
        ),
        (
            {"type": "compose", "id": 19, "request": {"seed_midi": "MThd"}},
            "seed_midi must be bytes or nothing (received 'MThd')",
        ),
        (
            {"type": "compose", "id": 20, "request": {"max_audio_bytes": 10}},
            "max_audio_bytes must be at least 32000 (received 10)",
        ),
        (
            {
                "type": "finetune",
                "id": 23,
                "request": {"guild_id": 1, "pieces": [b"x"], "steps": 0},
            },
            "steps must be within 1 and 100000 (received 0)",
        ),
        (
            {"type": "finetune", "id": 24, "request": {"guild_id": 1, "pieces": ["x"]}},
            "pieces must be bytes (received 'x')",
        ),
    ],
)
async def test_malformed_message_gets_an_error(engine, message, reason):
    await engine.send(message)
    expected_id = message.get("id") if isinstance(message, dict) else None
    expected_id = expected_id if isinstance(expected_id, int) else None
    error, _ = await receive_until(engine, lambda m: m.get("type") == "error")
    assert error["id"] == expected_id
    assert error["kind"] == "BadRequest" and reason in error["message"], error


async def test_bad_seed_is_reported_with_its_reason(engine):
    await engine.send({"type": "compose", "id": 30, "request": {"seed_midi": b"RIFF...."}})
    error, _ = await receive_until(engine, reply_to(30, "error", "result"))
    assert error["kind"] == "BadSeed" and "not a MIDI file" in error["message"]


async def test_keeps_serving_after_bad_messages(engine, examples):
    seed = (examples / "motif.mid").read_bytes()
    await engine.send(
        {
            "type": "compose",
            "id": 40,
            "request": {"seed_midi": seed, "bars": 2, "candidates": 2, "seed": 3},
        }
    )
    result, before = await receive_until(engine, reply_to(40, "result", "error"))
    assert result["type"] == "result", result
    candidates = result["result"]["candidates"]
    assert len(candidates) == 2
    for cand in candidates:
        assert Score.from_midi(cand["midi"]).note_num() == cand["notes"] > 0
        assert cand["audio"][:4] == b"OggS"
    assert result["result"]["pianoroll"][:4] == b"\x89PNG"
    stages = [m["event"]["stage"] for m in before if reply_to(40, "progress")(m)]
    assert stages[-2:] == ["composing", "rendering"]


async def test_cancel_frees_the_rows_at_once(engine):
    await engine.send(
        {
            "type": "compose",
            "id": 50,
            "request": {"bars": 64, "candidates": 4, "guild_id": 1, "seed": 0},
        }
    )
    await receive_until(
        engine, lambda m: reply_to(50, "progress")(m) and m["event"]["stage"] == "composing"
    )
    assert (await ping(engine, 51))["active_rows"] == 4
    await engine.send({"type": "cancel", "id": 50})
    # Pings are answered by the core thread after the commands sent before them.
    stats = await ping(engine, 52)
    assert stats["active_rows"] == 0 and stats["jobs"] == 0, stats


async def test_queue_reports_positions_and_starts_jobs_as_rows_free(engine):
    # max_rows is 8: two 4-row jobs decode, the third waits first in the queue.
    for job_id, bars in ((60, 16), (61, 16), (62, 2)):
        await engine.send(
            {
                "type": "compose",
                "id": job_id,
                "request": {"bars": bars, "candidates": 4, "guild_id": job_id, "seed": job_id},
            }
        )
    done: dict[int, dict[str, Any]] = {}
    seen: list[dict[str, Any]] = []
    while len(done) < 3:
        message, before = await receive_until(
            engine, lambda m: m.get("type") in ("result", "error")
        )
        seen += before
        done[message["id"]] = message
    assert all(m["type"] == "result" for m in done.values()), done
    queued = [
        (m["id"], m["event"]["position"])
        for m in seen
        if m["type"] == "progress" and m["event"]["stage"] == "queued"
    ]
    assert queued == [(62, 1)]


async def test_guild_version_decodes_beside_the_base_model(engine, data_dir):
    # A server's versions are the engine's files, named by id: "<guild id>/<name>".
    versions = data_dir / "models" / "7"
    versions.mkdir(parents=True, exist_ok=True)
    shutil.copy(CHECKPOINT, versions / "tuned.pt")
    (versions / "broken.pt").write_bytes(b"not a checkpoint")
    requests = {
        70: {"bars": 8, "candidates": 2, "model": "7/tuned", "guild_id": 7, "seed": 1},
        71: {"bars": 8, "candidates": 2, "seed": 1},
        72: {"bars": 2, "candidates": 1, "model": "7/broken", "guild_id": 7},
        74: {"bars": 2, "candidates": 1, "model": "7/missing", "guild_id": 7},
        75: {"bars": 2, "candidates": 1, "model": "7/tuned", "guild_id": 8},
        76: {"bars": 2, "candidates": 1, "model": str(versions / "tuned.pt"), "guild_id": 7},
    }
    for job_id, request in requests.items():
        await engine.send({"type": "compose", "id": job_id, "request": request})
    replies = {}
    while len(replies) < len(requests):
        message, _ = await receive_until(engine, lambda m: m.get("type") in ("result", "error"))
        replies[message["id"]] = message
    assert replies[70]["type"] == replies[71]["type"] == "result"
    assert replies[72]["kind"] == "EngineError" and "could not be loaded" in replies[72]["message"]
    refused = {
        job_id: (replies[job_id]["kind"], replies[job_id]["message"]) for job_id in (74, 75, 76)
    }
    assert refused == {
        74: (
            "BadRequest",
            "model version 7/missing is not in this engine (it may have been "
            "pruned); activate another version",
        ),
        75: ("BadRequest", "a server can only use its own model versions (received '7/tuned')"),
        76: (
            "BadRequest",
            f"a model version id is <server id>/<name> (received "
            f"{str(versions / 'tuned.pt')!r:.60})",
        ),
    }
    assert "7/tuned" in (await ping(engine, 73))["models"]
