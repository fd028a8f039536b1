"""Real processes for the queue tests: a loopback redis-server (Debian's binary) and
`python -m engine worker` processes with the shipped checkpoint."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from engine.api.queue_keys import GROUP

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None
)
WORKER_START_SECONDS = 240.0  # torch, the model, the soundfont, a warm-up: on a busy machine
STOP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (a child not reaped yet) is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 that keeps nothing on disk; it can be stopped
    and started again on the same port (a Redis restart that loses its data)."""

    def __init__(self, directory: Path) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed (make system installs it)")
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.directory / "server.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start: {(self.directory / 'server.log').read_text()}"
                    ) from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None


class WorkerProcess:
    """`python -m engine worker` with the shipped checkpoint on the CPU, logging to a file."""

    def __init__(
        self,
        url: str,
        prefix: str,
        name: str,
        log_dir: Path,
        *,
        claim_idle: float = 3.0,
        max_rows: int | None = None,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.prefix = prefix
        self.log = log_dir / f"{name}.log"
        argv = [
            sys.executable,
            "-m",
            "engine",
            "worker",
            "--queue-url",
            url,
            "--prefix",
            prefix,
            "--name",
            name,
            "--claim-idle",
            str(claim_idle),
            "--device",
            "cpu",
        ]
        if max_rows is not None:
            argv += ["--max-rows", str(max_rows)]
        extra = env or {}
        env = {k: v for k, v in os.environ.items() if k != "MOTIF_QUEUE_URL"}
        # Each worker its own data dir, as on its own machine.
        self.data_dir = data_dir or log_dir / f"{name}-data"
        env["MOTIF_DATA_DIR"] = str(self.data_dir)
        env["MOTIF_RENDER_THREADS"] = "1"
        env.update(extra)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.engine_pids: set[int] = set()
        self._redis = redis.Redis.from_url(url)

    @property
    def pid(self) -> int:
        return self.process.pid

    def info(self) -> dict[str, Any]:
        """The worker's heartbeat hash (pid, state, engine_pid, stats...)."""
        raw = self._redis.hgetall(f"{self.prefix}:worker:{self.name}")
        info = {k.decode(): v for k, v in raw.items()}
        engine_pid = int(info.get("engine_pid") or 0)
        if engine_pid:
            self.engine_pids.add(engine_pid)
        return info

    def engine_pid(self) -> int:
        return int(self.info().get("engine_pid") or 0)

    def wait_serving(
        self, timeout: float = WORKER_START_SECONDS, *, not_engine: int | None = None
    ) -> None:
        """Until its engine serves (a new one, when `not_engine` names the old one's pid)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.info()
            engine = int(info.get("engine_pid") or 0)
            if info.get("state") == b"serving" and info.get("stats") and engine != not_engine:
                return
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker {self.name} exited with {self.process.returncode}:\n{self.log_text()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"worker {self.name} did not serve within {timeout:.0f} s:\n{self.log_text()}"
                )
            time.sleep(0.2)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        with contextlib.suppress(redis.RedisError):  # remember its engine, to make sure it goes
            self.info()
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout: float = STOP_SECONDS) -> int:
        """SIGTERM (a drain) and wait; SIGKILL if it is still there after `timeout`."""
        if self.process.poll() is None:
            with contextlib.suppress(redis.RedisError):  # its engine's pid, if Redis can tell
                self.info()
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reap_engines()
        self._redis.close()
        return self.process.returncode

    def _reap_engines(self) -> None:
        """An engine whose worker was killed exits on EOF by itself; make sure of it."""
        deadline = time.monotonic() + 15
        for pid in self.engine_pids:
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(OSError):  # gone meanwhile
                if alive(pid) and b"engine" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


def holders(inspect: redis.Redis, prefix: str, kind: str = "compose") -> dict[str, int]:
    """Worker name -> how many jobs of `kind` it holds (claimed, not yet answered)."""
    summary = inspect.xpending(f"{prefix}:jobs:{kind}", GROUP)
    return {
        c["name"].decode(): int(c["pending"]) for c in summary["consumers"] if int(c["pending"])
    }
