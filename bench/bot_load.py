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

from bench.machine import REPO_ROOT, cpu_seconds, resident_mb
from bot import Settings, create_bot
from bot.db import migrate
from engine.api.client import EngineClient

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
    return Timing(
        deferral - started, final - started, sum(a.size for a in message.attachments) / 2**20
    )


# Code that is the simulation, not the bot: SimCord, and this file, which drives it.
SIMULATION_CODE = (f"{Path(simcord.__file__).parent}/", __file__)
ORIGINS = ("bot", "simulation")


def _code(handle: asyncio.Handle):
    """The code a callback runs: its task's coroutine, or the function itself."""
    callback = handle._callback  # noqa: SLF001
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return getattr(owner.get_coro(), "cr_code", None)
    return getattr(callback, "__code__", None)


def _origin(code) -> str:
    """ "simulation" for SimCord's callbacks and tasks and this file's (the simulated Discord,
    its virtual clock and the members' commands share the bot's loop), else "bot"."""
    filename = code.co_filename if code is not None else ""
    return "simulation" if filename.startswith(SIMULATION_CODE) else "bot"


def _describe(code) -> str:
    if code is None:
        return "a builtin callback"
    return f"{code.co_qualname} ({Path(code.co_filename).name})"


class CallbackTimes:
    """Times every callback the loop runs, by origin, while installed (it patches asyncio's
    Handle._run and the loop's _run_once). One pass of the loop runs every callback that is
    ready, so a pass's total is how long a timer due then waits: the worst pass counting only
    the bot's callbacks is the lag the bot itself would cause without SimCord beside it."""

    def __init__(self) -> None:
        self.longest = dict.fromkeys(ORIGINS, 0.0)  # one callback
        self.worst_pass = dict.fromkeys(ORIGINS, 0.0)  # one pass of the loop
        self.total = dict.fromkeys(ORIGINS, 0.0)
        self._this_pass = dict.fromkeys(ORIGINS, 0.0)
        self.longest_bot_callback = ""
        self._run = asyncio.Handle._run  # noqa: SLF001
        self._loop = asyncio.get_running_loop()

    def install(self) -> None:
        run_handle, run_once, times = self._run, self._loop._run_once, self  # noqa: SLF001

        def timed_run(handle: asyncio.Handle) -> None:
            started = time.perf_counter()
            try:
                run_handle(handle)
            finally:
                spent = time.perf_counter() - started
                code = _code(handle)
                origin = _origin(code)
                times.total[origin] += spent
                times._this_pass[origin] += spent
                if spent > times.longest[origin]:
                    times.longest[origin] = spent
                    if origin == "bot":
                        times.longest_bot_callback = _describe(code)

        def timed_pass() -> None:
            times._this_pass = dict.fromkeys(ORIGINS, 0.0)
            run_once()
            for origin, spent in times._this_pass.items():
                times.worst_pass[origin] = max(times.worst_pass[origin], spent)

        asyncio.Handle._run = timed_run  # type: ignore[method-assign]  # noqa: SLF001
        self._loop._run_once = timed_pass  # type: ignore[attr-defined]  # noqa: SLF001

    def uninstall(self) -> dict:
        asyncio.Handle._run = self._run  # type: ignore[method-assign]  # noqa: SLF001
        del self._loop._run_once  # back to the class's own  # noqa: SLF001
        return {
            "worst_pass_seconds": self.worst_pass,
            "longest_seconds": self.longest,
            "total_seconds": self.total,
            "longest_bot_callback": self.longest_bot_callback,
        }


class LoopLag:
    """How late a task sleeping TICK_SECONDS at a time wakes up, at worst; and which
    callbacks kept the loop busy (CallbackTimes)."""

    def __init__(self) -> None:
        self.worst, self.ticks = 0.0, 0
        self.callbacks = CallbackTimes()
        self.callbacks.install()
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK_SECONDS)
            self.worst = max(self.worst, time.perf_counter() - started - TICK_SECONDS)
            self.ticks += 1

    def stop(self) -> dict:
        self._task.cancel()
        return {
            "worst_seconds": self.worst,
            "ticks": self.ticks,
            "callbacks": self.callbacks.uninstall(),
        }


async def compose_together(
    env: simcord.Env, members: list, seed: bytes, log: TimedLog
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
            results.append(
                await member.slash(channel, "compose", seed=("motif.mid", seed), **REQUEST)
            )
    finally:
        del env._settle_internal  # back to SimCord's own method
    await env.settle(timeout=SETTLE_SECONDS)
    return [timing_of(r, t, log) for r, t in zip(results, started, strict=True)]


async def measure(quick: bool) -> dict:
    seed = SEED.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            compose_cooldown_seconds=0.0,
            max_inflight_per_guild=CONCURRENT,
            log_level="WARNING",
        )
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
                    members.append(
                        (
                            guild.add_member(env.create_user(f"member{i}")),
                            guild.create_text_channel("music"),
                        )
                    )
                ready_rss = {"bot": resident_mb(), "engine": resident_mb(engine.engine_info.pid)}
                warm_up = await compose_together(env, members[:1], seed, log)  # not counted

                engine_pid = engine.engine_info.pid
                lag = LoopLag()
                cpu_before = cpu_seconds(engine_pid)
                alone = [
                    (await compose_together(env, members[:1], seed, log))[0]
                    for _ in range(QUICK_ALONE if quick else ALONE)
                ]
                alone_lag = lag.stop()
                cpu_alone = cpu_seconds(engine_pid) - cpu_before
                lag = LoopLag()
                cpu_before = cpu_seconds(engine_pid)
                together = [
                    await compose_together(env, members, seed, log)
                    for _ in range(QUICK_ROUNDS if quick else ROUNDS)
                ]
                together_lag = lag.stop()
                cpu_together = cpu_seconds(engine_pid) - cpu_before
            await bot.db.dispose()
            engine_rss = resident_mb(engine.engine_info.pid)
            engine_info = {"device": engine.engine_info.device, "pid": engine.engine_info.pid}
    if "torch" in sys.modules:
        raise RuntimeError("the bot process imported torch: its memory figure would be wrong")
    return {
        "request": REQUEST,
        "concurrent": CONCURRENT,
        "warm_up": [asdict(t) for t in warm_up],
        "alone": [asdict(t) for t in alone],
        "together": [[asdict(t) for t in round_] for round_ in together],
        "lag": {"alone": alone_lag, "together": together_lag},
        # The engine process's CPU time (all its threads) over each phase.
        "engine_cpu_seconds": {"alone": cpu_alone, "together": cpu_together},
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
