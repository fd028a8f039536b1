"""The engine's processes as the operating system sees them: what they inherit, and what a run
leaves on disk when the engine ends, cleanly or killed."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from engine.api.child_env import child_environment
from engine.api.client import EngineClient, FinetuneRequest
from engine.api.errors import EngineError
from engine.api.schema import FinetuneCommand, encode
from engine.api.transport import SubprocessTransport
from engine.serving.finetune_processes import FinetuneProcesses
from engine.serving.model_store import ModelStore
from tests.engine.test_server import SERVE, STARTUP_TIMEOUT, RawEngine, receive_until, reply_to

session_loop = pytest.mark.asyncio(loop_scope="session")
SECRETS = {
    "DISCORD_TOKEN": "the-bot-token-stays-in-the-bot",
    "DATABASE_URL": "postgresql+asyncpg://motif:hunter2@db.example/motif",
}
GUILD = 4242
LONG_RUN = 5000  # steps: the run is still going whatever the test does meanwhile


@pytest.fixture(scope="module")
def pieces(chorale_files) -> list[bytes]:
    return [p.read_bytes() for p in chorale_files]


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def children_of(pid: int) -> dict[int, str]:
    """Live child processes of `pid` and their command lines."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found[int(stat.parent.name)] = (
                    (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
        except (OSError, IndexError, ValueError):
            continue  # it exited while we looked
    return found


def is_running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def wait_until(predicate, what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.2)
    return value


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
@session_loop
async def test_the_bots_secrets_reach_neither_the_engine_nor_its_children(
    monkeypatch, engine_data_dir, pieces
):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    async with EngineClient.local(
        device="cpu", max_rows=8, env={"MOTIF_DATA_DIR": str(engine_data_dir)}
    ) as engine:
        run = asyncio.create_task(
            engine.finetune(FinetuneRequest(guild_id=GUILD, pieces=pieces, steps=LONG_RUN))
        )
        pid = engine.engine_info.pid
        children = await wait_until(
            lambda: (
                (found := children_of(pid))
                and any(" finetune " in c for c in found.values())
                and found
            ),
            "the engine runs a fine-tune child",
        )
        for process in [pid, *children]:
            env = environ_of(process)
            assert not SECRETS.keys() & env.keys(), (process, children.get(process))
            assert env["MOTIF_DATA_DIR"] == str(engine_data_dir) and "PATH" in env
        assert any("engine.serving.seed_reader" in command for command in children.values())
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run


def test_the_allow_list_keeps_what_children_need_and_nothing_else():
    env = child_environment(
        {"MOTIF_DATA_DIR": "/srv/motif"},
        base={
            "PATH": "/usr/bin",
            "HOME": "/home/motif",
            "LC_ALL": "C.UTF-8",
            "MOTIF_DEVICE": "cpu",
            "CUDA_VISIBLE_DEVICES": "0",
            "OMP_NUM_THREADS": "2",
            "PYTHONPATH": "/srv",
            "DISCORD_TOKEN": "x",
            "DATABASE_URL": "y",
            "MOTIF_DATABASE_URL": "z",
            "AWS_SECRET_ACCESS_KEY": "k",
            "MOTIF_API_TOKEN": "t",
            "HTTPS_PROXY": "http://u:p@proxy",
            "SSH_AUTH_SOCK": "/tmp/agent",
        },
    )
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/motif",
        "LC_ALL": "C.UTF-8",
        "MOTIF_DEVICE": "cpu",
        "CUDA_VISIBLE_DEVICES": "0",
        "OMP_NUM_THREADS": "2",
        "PYTHONPATH": "/srv",
        "MOTIF_DATA_DIR": "/srv/motif",
    }


# Fine-tune work folders.


async def start_engine(data_dir: Path) -> tuple[RawEngine, int]:
    transport = RawEngine(
        SubprocessTransport(
            [*SERVE, "--max-rows", "8"], env=child_environment({"MOTIF_DATA_DIR": str(data_dir)})
        )
    )
    await transport.open()
    ready, _ = await receive_until(transport, lambda m: True, STARTUP_TIMEOUT)
    assert ready["type"] == "ready", ready
    return transport, ready["pid"]


async def start_run(engine: RawEngine, job_id: int, pieces: list[bytes]) -> None:
    request = FinetuneRequest(guild_id=GUILD, pieces=pieces, steps=LONG_RUN)
    await engine.transport.send(encode(FinetuneCommand(job_id, request)))
    await receive_until(
        engine,
        lambda m: reply_to(job_id, "progress")(m) and m["event"]["stage"] == "training",
        timeout=STARTUP_TIMEOUT,
    )


def run_folders(data_dir: Path) -> list[Path]:
    guild = data_dir / "finetune" / str(GUILD)
    return sorted(guild.iterdir()) if guild.is_dir() else []


@session_loop
async def test_work_folders_of_a_killed_engine_are_swept_at_the_next_start(engine_data_dir, pieces):
    first, first_pid = await start_engine(engine_data_dir)
    await start_run(first, 1, pieces)
    [folder, lock] = run_folders(engine_data_dir)
    assert (folder / "data" / "pieces").is_dir() and lock.name == f"{folder.name}.lock"
    [child] = [p for p, c in children_of(first_pid).items() if " finetune " in c]

    # Another engine starting on the same data dir (a restart overlap) leaves a live run be.
    second, _ = await start_engine(engine_data_dir)
    await second.close(timeout=10.0)
    assert folder.is_dir()

    os.kill(first_pid, signal.SIGKILL)
    await first.wait_exit(10.0)
    assert first.describe_exit() == "killed by signal 9"
    assert folder.is_dir()  # nobody could remove it: the server's MIDI is still on disk
    third, _ = await start_engine(engine_data_dir)
    try:
        assert run_folders(engine_data_dir) == []
        # The orphaned child notices its engine is gone and stops.
        await wait_until(lambda: not is_running(child), "the orphaned fine-tune stops")
        # A clean stop in the middle of a run removes that run's folder too.
        await start_run(third, 2, pieces)
        assert len(run_folders(engine_data_dir)) == 2
    finally:
        await third.close(timeout=30.0)
    assert third.describe_exit() == "exited with code 0"
    assert run_folders(engine_data_dir) == []


def test_a_failed_spawn_leaves_no_folder(engine_data_dir, pieces):
    replies: list[dict] = []
    jobs = FinetuneProcesses(
        engine_data_dir, ModelStore(engine_data_dir), replies.append, python="/nonexistent/python"
    )
    with pytest.raises((OSError, EngineError)):
        jobs.start(7, FinetuneRequest(guild_id=GUILD, pieces=pieces, steps=1))
    assert run_folders(engine_data_dir) == [] and jobs.running == 0 and not replies
