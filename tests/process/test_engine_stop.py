"""The real `python -m engine serve` on its own SIGTERM (systemd's default KillMode signals
every process of the service): it finishes the compositions in flight, refuses new ones
clearly, and exits 0."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import pytest

from engine.api.client import ComposeRequest, EngineClient, EngineUnavailable, Queued
from tests.process.bot_process import engine_is_gone


@pytest.mark.timeout(300)
async def test_a_stopped_engine_delivers_its_jobs_in_flight_then_exits_0(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="engine.api.client")
    async with EngineClient.local(
        device="cpu", env={"MOTIF_DATA_DIR": str(tmp_path)}, restart_delays=[60.0]
    ) as engine:
        pid = engine.engine_info.pid
        started = asyncio.Event()

        def on_progress(event: object) -> None:
            if not isinstance(event, Queued):
                started.set()

        in_flight = asyncio.create_task(
            engine.compose(ComposeRequest(bars=8, candidates=2, seed=1), on_progress=on_progress)
        )
        await asyncio.wait_for(started.wait(), 120)
        os.kill(pid, signal.SIGTERM)
        async with asyncio.timeout(30):
            while not (await engine.stats()).draining:
                await asyncio.sleep(0.05)
        with pytest.raises(EngineUnavailable, match="stopping"):
            await engine.compose(ComposeRequest(bars=4, candidates=1, seed=2))

        result = await asyncio.wait_for(in_flight, 120)
        assert len(result.candidates) == 2 and all(c.audio for c in result.candidates)
        async with asyncio.timeout(30):  # the engine exits once its last job is delivered
            while "exited with code 0" not in caplog.text:
                await asyncio.sleep(0.05)
        assert engine_is_gone(pid)
