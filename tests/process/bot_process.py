"""`python -m bot` as a real subprocess: its own SQLite data dir, the engine it starts itself,
Discord replaced by a DiscordStandIn through DISCORD_API_BASE, health and metrics on a port."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.process.discord_standin import DiscordStandIn, free_port

REPO = Path(__file__).resolve().parents[2]
# Loading torch, the model and the soundfont, then a warm-up composition: slow on a busy machine.
START_SECONDS = 240.0


class BotProcess:
    def __init__(self, data_dir: Path, discord_: DiscordStandIn, **env: str) -> None:
        self.metrics_port = free_port()
        self.env = {
            **os.environ,
            "DISCORD_TOKEN": "standin-token",
            "DISCORD_API_BASE": discord_.api_base,
            "MOTIF_DATA_DIR": str(data_dir),
            "MOTIF_DEVICE": "cpu",
            "MOTIF_COMPOSE_COOLDOWN_SECONDS": "0",
            "MOTIF_METRICS_PORT": str(self.metrics_port),
            "MOTIF_LOG_FORMAT": "json",
            **env,
        }
        self.log: list[dict[str, Any]] = []  # the JSON log lines of the bot and its engine
        self.other_lines: list[str] = []  # anything on stderr that is not a JSON object
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BotProcess:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=REPO,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read_stderr())
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.process is not None and self._http is not None
        if self.process.returncode is None:  # a failed test: leave nothing running
            self.process.kill()
            await self.process.wait()
        for pid in self.engine_pids():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        await self._http.close()
        if self._reader is not None:
            await self._reader

    def signal(self, stop_signal: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(stop_signal)

    async def exit_status(self, timeout: float) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def get(self, path: str) -> tuple[int, str]:
        assert self._http is not None
        async with self._http.get(f"http://127.0.0.1:{self.metrics_port}{path}") as response:
            return response.status, await response.text()

    async def wait_ready(self) -> None:
        """Until /readyz says 200 (the gateway, the database and the engine are up)."""
        await self._poll_readyz(lambda status, body: status == 200, START_SECONDS)

    async def wait_draining(self) -> dict[str, Any]:
        """Until /readyz says 503 because the bot drains; its JSON."""
        return await self._poll_readyz(
            lambda status, body: status == 503 and body.get("draining"), 30.0
        )

    async def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics, scraped now."""
        status, text = await self.get("/metrics")
        assert status == 200, text
        wanted = name + (
            "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
        )
        for line in text.splitlines():
            sample, _, value = line.rpartition(" ")
            if sample == wanted:
                return float(value)
        raise AssertionError(f"{wanted} is not in /metrics:\n{text}")

    async def wait_metric(self, name: str, value: float, **labels: str) -> None:
        """Until /metrics shows `value` (the bot records an outcome just after it posts)."""
        async with asyncio.timeout(30):
            while await self.metric(name, **labels) != value:
                await asyncio.sleep(0.05)

    def engine_pids(self) -> list[int]:
        return [
            int(m[1])
            for entry in self.log
            if (m := re.match(r"engine pid (\d+) ready", entry.get("message", "")))
        ]

    async def _poll_readyz(self, done: Any, timeout: float) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError(
                        f"the bot exited with {self.process.returncode}: "
                        f"{self.log[-5:]} {self.other_lines[-5:]}"
                    )
                try:
                    status, text = await self.get("/readyz")
                except aiohttp.ClientError:
                    status, text = 0, "{}"
                body = json.loads(text)
                if done(status, body):
                    return body
                await asyncio.sleep(0.05)

    async def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                self.log.append(entry)
            else:
                self.other_lines.append(line)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose but its entry in the process table.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def engine_is_gone(pid: int) -> bool:
    return not _alive(pid)
