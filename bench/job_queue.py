"""The Redis job queue: its own cost per job, throughput with one and two workers, and how
long a killed worker's job takes to come back.

    .venv/bin/python -m bench.job_queue [--quick]

A tiny real checkpoint (an LSTM of 32 units trained for a few steps on the bundled examples,
with the shipped tokenizer) keeps the model's share small, so the queue is what is measured.
Real components throughout: a loopback redis-server (Debian's), `python -m engine worker`
processes, the bot's client (`queue_client`) beside the embedded engine (`EngineClient.local`).
- Overhead: the same 1-bar, 1-candidate composition one at a time through each; the queue's
  cost is the difference of the latencies (p50, p95).
- Throughput: a batch of such compositions sent at once, through one worker then two.
- Recovery: a composition whose worker is killed (-9) as it starts decoding; the time from the
  kill to the answer, with the workers' claim idle time given.
- What N workers would do: Redis' own CPU time per composition (INFO cpu, over the batches)
  bounds the queue at one Redis core; below that, each worker on a machine of its own adds
  its throughput.
- Models on every worker: publishing a server's version of the shipped model's size to Redis
  and fetching it (with its checksum) on a worker that has never seen it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.machine import REPO_ROOT
from bench.markdown import table
from bench.section import Headline, Report, Section, main
from engine.api.client import ComposeRequest, Decoding, EngineClient
from engine.api.queue_keys import GROUP
from engine.api.queue_transport import queue_client

EXAMPLES = REPO_ROOT / "engine" / "examples"
SEQUENTIAL, QUICK_SEQUENTIAL = 40, 15
BATCH, QUICK_BATCH = 48, 16
JOB = ComposeRequest(bars=1, candidates=1, seed=0)
RECOVERY_JOB = ComposeRequest(bars=32, candidates=1, seed=1)
CLAIM_IDLE = 3.0  # seconds; the default is 10
WORKER_START_SECONDS = 240.0


def tiny_checkpoint(out: Path) -> Path:
    """A real, tiny model: the shipped tokenizer, 32 LSTM units, 60 steps on the examples."""
    import torch
    from symusic import Score

    from engine.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from engine.model.lstm import LSTMLanguageModel, ModelConfig
    from engine.training.loop import TrainConfig, train

    base = load_checkpoint()
    tok = base.tokenizer
    ids: list[int] = []
    for path in sorted(EXAMPLES.glob("*.mid")):
        ids += [tok.bos_id, *tok.encode(Score(path)), tok.eos_id]
    stream = np.asarray(ids * 20, dtype=np.int32)
    torch.manual_seed(0)
    model = LSTMLanguageModel(
        ModelConfig(
            vocab_size=tok.vocab_size, embed_dim=16, hidden_dim=32, num_layers=1, dropout=0.0
        )
    )
    train(
        model,
        stream,
        stream,
        TrainConfig(steps=60, batch_size=8, seq_len=32, lr=1e-2, warmup_steps=5, eval_every=60),
    )
    meta = {**base.meta, "note": "bench.job_queue's tiny model"}
    save_checkpoint(out, Checkpoint(model=model.eval(), tokenizer=tok, meta=meta))
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(server).exists():
        raise RuntimeError("redis-server is not installed (make system installs it)")
    port = free_port()
    process = subprocess.Popen(
        [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


class Workers:
    """`python -m engine worker` processes on the tiny model."""

    def __init__(self, url: str, checkpoint: Path, data_dir: Path) -> None:
        self._url, self._checkpoint, self._data_dir = url, checkpoint, data_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        env = {k: v for k, v in os.environ.items() if k != "MOTIF_QUEUE_URL"}
        env.update(
            {
                "MOTIF_CHECKPOINT": str(self._checkpoint),
                "MOTIF_DEVICE": "cpu",
                "MOTIF_DATA_DIR": str(self._data_dir / name),
                "MOTIF_LOG_LEVEL": "WARNING",
            }
        )
        self.processes[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "engine",
                "worker",
                "--queue-url",
                self._url,
                "--name",
                name,
                "--claim-idle",
                str(CLAIM_IDLE),
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def serving(self, engine: EngineClient, count: int) -> None:
        deadline = time.monotonic() + WORKER_START_SECONDS
        while (stats := await engine.stats()).max_rows < count * 64:  # 64 rows on a CPU
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{count} workers did not serve within "
                    f"{WORKER_START_SECONDS:.0f} s ({stats.device})"
                )
            await asyncio.sleep(0.2)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


async def latencies(engine: EngineClient, count: int) -> list[float]:
    await engine.compose(JOB)  # warm
    out = []
    for _ in range(count):
        started = time.perf_counter()
        await engine.compose(JOB)
        out.append(time.perf_counter() - started)
    return out


async def throughput(engine: EngineClient, count: int) -> float:
    started = time.perf_counter()
    await asyncio.gather(
        *(engine.compose(ComposeRequest(bars=1, candidates=1, seed=i)) for i in range(count))
    )
    return count / (time.perf_counter() - started)


async def recovery(engine: EngineClient, workers: Workers, redis_url: str) -> tuple[float, float]:
    """Seconds from killing the worker that holds a composition to its answer, and the same
    composition's seconds when nothing is killed."""
    import redis

    inspect = redis.Redis.from_url(redis_url)
    killed_at: list[float] = []

    def on_progress(event: object) -> None:
        if isinstance(event, Decoding) and not killed_at:
            summary = inspect.xpending("motif:jobs:compose", GROUP)
            holder = next(c["name"].decode() for c in summary["consumers"] if c["pending"])
            killed_at.append(time.perf_counter())
            workers.kill(holder)

    started = time.perf_counter()
    await engine.compose(RECOVERY_JOB)
    alone = time.perf_counter() - started
    await engine.compose(RECOVERY_JOB, on_progress=on_progress)
    inspect.close()
    return time.perf_counter() - killed_at[0], alone


async def measure(quick: bool, checkpoint: Path, work: Path) -> dict:
    sequential = QUICK_SEQUENTIAL if quick else SEQUENTIAL
    batch = QUICK_BATCH if quick else BATCH
    async with EngineClient.local(
        checkpoint=checkpoint, device="cpu", env={"MOTIF_DATA_DIR": str(work / "embedded")}
    ) as embedded:
        direct = await latencies(embedded, sequential)
    process, url = start_redis(work)
    workers = Workers(url, checkpoint, work)
    try:
        async with queue_client(url) as engine:
            workers.start("w1")
            await workers.serving(engine, 1)
            before = commands(url)
            queued = await latencies(engine, sequential)
            per_job = (commands(url) - before) / (sequential + 1)
            cpu_before = redis_cpu(url)
            one = await throughput(engine, batch)
            workers.start("w2")
            await workers.serving(engine, 2)
            two = await throughput(engine, batch)
            # Heartbeats and polls of the seconds the batches took are counted in: an upper bound.
            redis_per_job = (redis_cpu(url) - cpu_before) / (2 * batch)
            recovered, alone = await recovery(engine, workers, url)
        publish, fetch, size = await model_transfer(url, work)
    finally:
        workers.stop()
        process.terminate()
        process.wait(10)
    return {
        "direct": direct,
        "queued": queued,
        "one": one,
        "two": two,
        "per_job": per_job,
        "recovered": recovered,
        "redis_per_job": redis_per_job,
        "publish": publish,
        "fetch": fetch,
        "model_mb": size / 1e6,
        "alone": alone,
        "sequential": sequential,
        "batch": batch,
    }


def redis_cpu(url: str) -> float:
    """CPU seconds Redis has used since it started (its main thread and the rest)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        client.close()


async def model_transfer(url: str, work: Path, repeats: int = 5) -> tuple[float, float, int]:
    """Median seconds to publish a version the size of the shipped model and to fetch it on a
    machine without it (checksum and write included), and its bytes."""
    from engine.api.queue_keys import QueueKeys, connect
    from engine.model.checkpoint import BASE_CHECKPOINT
    from engine.queue.shared_models import SharedModels
    from engine.serving.model_store import ModelStore

    client = connect(url)
    try:
        trainer = SharedModels(client, QueueKeys("bench"), ModelStore(work / "trainer"))
        model = "1/version"
        path = trainer.local.path_of(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(BASE_CHECKPOINT, path)
        published, fetched = [], []
        for i in range(repeats):
            started = time.perf_counter()
            await trainer.publish(model, accepted=True)
            published.append(time.perf_counter() - started)
            worker = SharedModels(client, QueueKeys("bench"), ModelStore(work / f"worker-{i}"))
            started = time.perf_counter()
            await worker.ensure_local(model, guild_id=1)
            fetched.append(time.perf_counter() - started)
        return float(np.median(published)), float(np.median(fetched)), path.stat().st_size
    finally:
        await client.aclose()


def commands(url: str) -> int:
    """Commands Redis has run since it started (all clients: heartbeats and polls too)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def ms(x: float) -> str:
    return f"{x * 1000:.1f} ms"


def run(quick: bool) -> Report:
    with tempfile.TemporaryDirectory(prefix="bench-queue-") as tmp:
        work = Path(tmp)
        checkpoint = tiny_checkpoint(work / "tiny.pt")
        figures = asyncio.run(measure(quick, checkpoint, work))
    direct, queued = np.asarray(figures["direct"]), np.asarray(figures["queued"])
    p50 = float(np.percentile(queued, 50) - np.percentile(direct, 50))
    p95 = float(np.percentile(queued, 95) - np.percentile(direct, 95))
    one, two = figures["one"], figures["two"]
    markdown = "\n\n".join(
        [
            f"One 1-bar, 1-candidate composition at a time ({figures['sequential']} each), on the "
            "tiny model, through the embedded engine and through Redis with one worker:",
            table(
                ["through", "p50", "p95"],
                [
                    [
                        "the engine subprocess",
                        ms(np.percentile(direct, 50)),
                        ms(np.percentile(direct, 95)),
                    ],
                    [
                        "Redis and one worker",
                        ms(np.percentile(queued, 50)),
                        ms(np.percentile(queued, 95)),
                    ],
                    ["the queue's own cost", ms(p50), ms(p95)],
                ],
            ),
            f"{figures['batch']} such compositions sent at once: {one:.1f} per second with one "
            f"worker, {two:.1f} with two ({two / one:.2f}x), both on this machine's "
            f"{os.cpu_count()} cores with the bot's process and Redis. Workers on machines of "
            "their own (one GPU each) add their throughput each, up to what Redis carries: "
            f"{figures['per_job']:.0f} Redis commands per composition here, one at a time "
            "(heartbeats, claim refreshes and idle polls included; fewer per job when jobs run at "
            "once), and its reply's bytes once in, once out.",
            f"What that predicts for N GPU workers: Redis spent at most "
            f"{ms(figures['redis_per_job'])} of CPU per composition in those batches (its "
            "heartbeats and polls over the same seconds included), so one Redis core carries "
            f"about {1 / figures['redis_per_job']:,.0f} compositions a second. A GPU worker "
            "on a machine of its own adds its own throughput (here the two workers shared two "
            "cores, so the second added less than one on a machine of its own): N workers "
            "give N times one worker's rate "
            "until the queue's total reaches that bound, which at one worker's rate here "
            f"({one:.1f} of these smallest compositions a second) is about "
            f"{1 / figures['redis_per_job'] / one:,.0f} workers. A real composition (16 bars, "
            "4 candidates) holds a worker for seconds, so real workers stay further from it.",
            f"Models on every worker: a server's version of the shipped model's size "
            f"({figures['model_mb']:.1f} MB) is published to Redis in {ms(figures['publish'])} "
            f"and fetched, checked (SHA-256) and written by a worker that lacks it in "
            f"{ms(figures['fetch'])} (medians of 5, loopback): the first composition with a "
            "version on a worker pays that once; later ones load it from the worker's disk "
            "through its model cache as the embedded engine does.",
            f"A worker killed (-9) as its composition ({RECOVERY_JOB.bars} bars, "
            f"{figures['alone']:.1f} s alone) started decoding: answered "
            f"{figures['recovered']:.1f} s after the kill, with `--claim-idle {CLAIM_IDLE:g}`: the "
            "claim goes idle, another worker takes it over (it looks every half claim idle time) "
            "and composes it from the start. The default claim idle time is 10 s.",
        ]
    )
    return Report(
        markdown,
        [
            Headline(
                "job queue: cost per job over the subprocess (p50 / p95)",
                f"{ms(p50)} / {ms(p95)}",
                "1-bar compositions, tiny model, loopback Redis",
            ),
            Headline(
                "job queue: throughput, two workers over one (this machine)",
                f"{two / one:.2f}x",
                "one machine's cores shared; more machines add each",
            ),
            Headline(
                "job queue: Redis CPU per composition (one Redis core's bound)",
                f"{ms(figures['redis_per_job'])} ({1 / figures['redis_per_job']:,.0f}/s)",
                "N GPU workers scale N-fold below that bound",
            ),
            Headline(
                "job queue: a server's version fetched by a worker without it",
                f"{ms(figures['fetch'])} for {figures['model_mb']:.1f} MB",
                f"published in {ms(figures['publish'])}; once per worker and version",
            ),
            Headline(
                "job queue: a killed worker's composition answered after",
                f"{figures['recovered']:.1f} s",
                f"the composition alone: {figures['alone']:.1f} s; claim idle {CLAIM_IDLE:g} s",
            ),
        ],
    )


SECTION = Section("The Redis job queue", ".venv/bin/python -m bench.job_queue", run)

if __name__ == "__main__":
    main(SECTION)
