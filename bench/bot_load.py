"""/compose through the real bot under SimCord: alone, then many at once.

    .venv/bin/python -m bench.bot_load [--quick]      # prints one JSON object (last line)

The bot runs as in production but against SimCord's simulated Discord, on a freshly migrated
SQLite database, with the real engine process (`EngineClient.local()`, the shipped model).
Each request is `/compose` with the bundled seed attached, 4 candidates x 16 bars, from a
member of its own server. Times come from SimCord's log of the bot's REST calls: the deferral
is the interaction's callback, the final message the edit that posts the clips. A ticker task
on the bot's event loop records how late it wakes (the loop's lag). This process never
imports torch, so its resident memory is the bot's (plus SimCord's simulated Discord).
bench/compose_e2e.py runs it and writes the section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import simcord

from bench.machine import resident_mb
from bot import Settings, create_bot
from bot.db import migrate
from engine.client import EngineClient
from engine.paths import REPO_ROOT

SEED = REPO_ROOT / "engine" / "examples" / "motif.mid"
REQUEST = {"bars": 16, "candidates": 4}
CONCURRENT = 16
ALONE, QUICK_ALONE = 8, 2  # compositions alone, one after the other
ROUNDS, QUICK_ROUNDS = 2, 1  # rounds of CONCURRENT compositions at once
TICK_SECONDS = 0.01
SETTLE_SECONDS = 600.0  # SimCord's patience for the bot to finish a round


class TimedLog(list):
    """SimCord's log of the bot's REST calls, noting when each call was made."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, entry) -> None:
        self.times.append(time.perf_counter())
        super().append(entry)

    def calls(self, token: str):
        return [(t, e) for t, e in zip(self.times, self, strict=True) if token in e.path]


@dataclass
class Timing:
    deferral: float  # seconds from the interaction to the bot's deferral
    final: float  # ... to the edit that posts the composition
    posted_mb: float  # size of the files posted (SimCord keeps them in the bot's memory)


def interaction_token(result: simcord.InteractionResult) -> str:
    # SimCord has no public accessor for an interaction's token, which every REST path of
    # the bot's answer carries.
    return result._interaction.token  # noqa: SLF001


def timing_of(result: simcord.InteractionResult, started: float, log: TimedLog) -> Timing:
    message = result.response
    clips = [a for a in message.attachments if a.filename.endswith(".ogg")] if message else []
    if len(clips) != REQUEST["candidates"]:
        raise RuntimeError(f"the bot did not post {REQUEST['candidates']} clips: {result!r}")
    calls = log.calls(interaction_token(result))
    deferral = next(t for t, e in calls if e.path.endswith("/callback"))
    final = max(t for t, e in calls if e.method == "PATCH" and (e.json or {}).get("embeds"))
    return Timing(deferral - started, final - started,
                  sum(a.size for a in message.attachments) / 2**20)


class LoopLag:
    """How late a task sleeping TICK_SECONDS at a time wakes up, at worst."""

    def __init__(self) -> None:
        self.worst, self.ticks = 0.0, 0
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK_SECONDS)
            self.worst = max(self.worst, time.perf_counter() - started - TICK_SECONDS)
            self.ticks += 1

    def stop(self) -> dict[str, float]:
        self._task.cancel()
        return {"worst_seconds": self.worst, "ticks": self.ticks}


async def compose_together(env: simcord.Env, members: list, seed: bytes, log: TimedLog
                           ) -> list[Timing]:
    """Every member's /compose reaches the bot before any is answered, as when many arrive."""
    # SimCord's slash waits for the bot to finish each interaction; holding that wait back
    # while dispatching lets the bot work on all of them at once, then one settle waits.
    async def not_yet(*args, **kwargs) -> None:
        return None

    env._settle_internal = not_yet  # noqa: SLF001
    try:
        started = []
        results = []
        for member, channel in members:
            started.append(time.perf_counter())
            results.append(await member.slash(channel, "compose", seed=("motif.mid", seed),
                                              **REQUEST))
    finally:
        del env._settle_internal  # back to SimCord's own method
    await env.settle(timeout=SETTLE_SECONDS)
    return [timing_of(r, t, log) for r, t in zip(results, started, strict=True)]


async def measure(quick: bool) -> dict:
    seed = SEED.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), compose_cooldown_seconds=0.0,
                            max_inflight_per_guild=CONCURRENT, log_level="WARNING")
        await migrate.upgrade_async(settings.database_url)
        async with EngineClient.local(device="cpu") as engine:
            bot = create_bot(settings, engine=engine)
            async with simcord.run(bot, settle_timeout=SETTLE_SECONDS) as env:
                log = TimedLog()
                env.backend.http_requests = log
                await bot.tree.sync()
                members = []
                for i in range(CONCURRENT):
                    guild = env.create_guild(f"Server {i}")
                    members.append((guild.add_member(env.create_user(f"member{i}")),
                                    guild.create_text_channel("music")))
                ready_rss = {"bot": resident_mb(),
                             "engine": resident_mb(engine.engine_info["pid"])}
                warm_up = await compose_together(env, members[:1], seed, log)  # not counted

                lag = LoopLag()
                alone = [(await compose_together(env, members[:1], seed, log))[0]
                         for _ in range(QUICK_ALONE if quick else ALONE)]
                alone_lag = lag.stop()
                lag = LoopLag()
                together = [await compose_together(env, members, seed, log)
                            for _ in range(QUICK_ROUNDS if quick else ROUNDS)]
                together_lag = lag.stop()
            await bot.db.dispose()
            engine_rss = resident_mb(engine.engine_info["pid"])
            engine_info = {k: engine.engine_info.get(k) for k in ("device", "pid")}
    if "torch" in sys.modules:
        raise RuntimeError("the bot process imported torch: its memory figure would be wrong")
    return {
        "request": REQUEST, "concurrent": CONCURRENT,
        "warm_up": [asdict(t) for t in warm_up],
        "alone": [asdict(t) for t in alone],
        "together": [[asdict(t) for t in round_] for round_ in together],
        "lag": {"alone": alone_lag, "together": together_lag},
        "rss_mb": {"ready": ready_rss, "bot": resident_mb(), "engine": engine_rss},
        "engine": engine_info,
        "torch_imported": "torch" in sys.modules,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.quick))))


if __name__ == "__main__":
    main()
