"""/compose end to end through the bot, alone and 16 at once, against the product's goals.

    .venv/bin/python -m bench.compose_e2e [--quick]

Runs bench/bot_load.py in its own process (which never imports torch, so the bot's memory is
measured honestly) and turns its figures into percentiles, the goals and their gaps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from bench.bot_load import (
    ALONE,
    CONCURRENT,
    QUICK_ALONE,
    QUICK_ROUNDS,
    REQUEST,
    ROUNDS,
    TICK_SECONDS,
)
from bench.figures import new_figure, save
from bench.machine import REPO_ROOT
from bench.markdown import ratio, seconds, table
from bench.section import Headline, Report, Section, main

GOAL_ALONE_SECONDS = 2.0
GOAL_TOGETHER_RATIO = 3.0
GOAL_LAG_SECONDS = 0.050
GOAL_BOT_MB = 150.0
TIMEOUT_SECONDS = 1200


def measure(quick: bool) -> dict:
    command = [sys.executable, "-m", "bench.bot_load", *(["--quick"] if quick else [])]
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=TIMEOUT_SECONDS
    )
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-6:])
        raise RuntimeError(f"bench.bot_load exited with {done.returncode}: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def met(ok: bool, gap: str) -> str:
    return "met" if ok else f"**not met** ({gap})"


def draw(alone: list[float], together: list[float]) -> str:
    fig = new_figure(6, 3.2)
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # horizontal jitter only
    for i, values in enumerate((alone, together)):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.7)
        ax.hlines(
            p(values, 50),
            i - 0.25,
            i + 0.25,
            colors="k",
            linewidth=2,
            label="p50" if i == 0 else None,
        )
    ax.axhline(
        GOAL_ALONE_SECONDS,
        color="tab:red",
        linestyle="--",
        linewidth=1,
        label=f"goal alone: {GOAL_ALONE_SECONDS:.0f} s",
    )
    ax.hlines(
        GOAL_TOGETHER_RATIO * p(alone, 50),
        0.6,
        1.4,
        colors="tab:purple",
        linestyles=":",
        label=f"goal at once: {GOAL_TOGETHER_RATIO:.0f}x the p50 alone",
    )
    ax.set_xticks([0, 1], ["alone", f"{CONCURRENT} at once"])
    ax.set_ylabel("seconds to the final message")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return save(fig, "compose-latency", "time to the final message, alone and 16 at once")


def run(quick: bool) -> Report:
    figures = measure(quick)
    alone = figures["alone"]
    together = [t for round_ in figures["together"] for t in round_]
    rows = []
    for label, timings in (("alone", alone), (f"{CONCURRENT} at once", together)):
        deferral = [t["deferral"] for t in timings]
        final = [t["final"] for t in timings]
        rows.append(
            [
                label,
                len(timings),
                seconds(p(deferral, 50)),
                seconds(p(deferral, 95)),
                seconds(p(final, 50)),
                seconds(p(final, 95)),
                seconds(max(final)),
            ]
        )
    latency = table(
        [
            "",
            "requests",
            "deferral p50",
            "deferral p95",
            "final message p50",
            "final message p95",
            "slowest",
        ],
        rows,
    )

    alone_p50 = p([t["final"] for t in alone], 50)
    together_p50 = p([t["final"] for t in together], 50)
    slowdown = together_p50 / alone_p50
    ticker = figures["lag"]["together"]["worst_seconds"]
    callbacks = figures["lag"]["together"]["callbacks"]
    lag = callbacks["worst_pass_seconds"]["bot"]  # SimCord does not run beside a real bot
    rss = figures["rss_mb"]
    cpu = figures["engine_cpu_seconds"]
    cores = os.cpu_count() or 1
    cpu_each = cpu["alone"] / len(alone)  # engine CPU-seconds one composition costs
    cpu_each_together = cpu["together"] / len(together)
    # The k-th of CONCURRENT equal compositions cannot finish before k of them are done, on
    # every core at once: a floor on the median however the engine schedules them.
    median_floor = CONCURRENT / 2 * cpu_each_together / cores
    bot_peak = rss["bot"]["peak"]
    posted = sum(t["posted_mb"] for t in figures["warm_up"] + alone + together)
    goals = table(
        ["goal", "measured", "target", ""],
        [
            [
                "/compose alone, p50 time to the final message",
                seconds(alone_p50),
                f"under {GOAL_ALONE_SECONDS:.0f} s",
                met(alone_p50 < GOAL_ALONE_SECONDS, f"{alone_p50 - GOAL_ALONE_SECONDS:+.2f} s"),
            ],
            [
                f"{CONCURRENT} at once vs alone, p50 time to the final message",
                ratio(slowdown),
                f"within {ratio(GOAL_TOGETHER_RATIO)}",
                met(
                    slowdown <= GOAL_TOGETHER_RATIO,
                    f"{slowdown / GOAL_TOGETHER_RATIO:.1f}x over; "
                    f"floor on this machine: {ratio(median_floor / alone_p50)}",
                ),
            ],
            [
                "bot event loop, worst lag the bot's own callbacks cause with "
                f"{CONCURRENT} at once",
                f"{lag * 1000:.0f} ms",
                f"under {GOAL_LAG_SECONDS * 1000:.0f} ms",
                met(lag < GOAL_LAG_SECONDS, f"{(lag - GOAL_LAG_SECONDS) * 1000:+.0f} ms"),
            ],
            [
                "bot process, peak resident memory",
                f"{bot_peak:.0f} MB",
                f"under {GOAL_BOT_MB:.0f} MB",
                met(
                    bot_peak < GOAL_BOT_MB,
                    f"{bot_peak - GOAL_BOT_MB:+.0f} MB; about "
                    f"{bot_peak - posted:.0f} MB without the {posted:.0f} MB of files "
                    "SimCord holds",
                ),
            ],
        ],
    )
    memory = table(
        ["process", "after start-up, MB", "at the end, MB", "peak, MB"],
        [
            [
                "bot (with SimCord's simulated Discord)",
                f"{rss['ready']['bot']['now']:.0f}",
                f"{rss['bot']['now']:.0f}",
                f"{bot_peak:.0f}",
            ],
            [
                "engine (model, synth, soundfont)",
                f"{rss['ready']['engine']['now']:.0f}",
                f"{rss['engine']['now']:.0f}",
                f"{rss['engine']['peak']:.0f}",
            ],
        ],
    )
    alone_runs, rounds = (QUICK_ALONE, QUICK_ROUNDS) if quick else (ALONE, ROUNDS)
    markdown = "\n\n".join(
        [
            f"`/compose` with `engine/examples/motif.mid` attached, {REQUEST['candidates']} "
            f"candidates x {REQUEST['bars']} bars, driven through the real bot by SimCord "
            f"(simulated Discord, a migrated SQLite database, the engine process with the "
            f"shipped model on {figures['engine']['device']}). Alone: {alone_runs} compositions "
            f"one after the other; at once: {rounds} round(s) of {CONCURRENT} members of "
            f"{CONCURRENT} servers sending it together (cooldown 0). Times run from the "
            f"interaction's arrival to the bot's REST calls; one warm-up composition is not "
            f"counted.",
            latency,
            draw([t["final"] for t in alone], [t["final"] for t in together]),
            goals,
            f"Memory (resident set from /proc). The bot process never imported torch "
            f"(checked). Its figure includes SimCord, which keeps every posted file in memory: "
            f"{posted:.0f} MB of clips and piano rolls in this run.",
            memory,
            f"CPU. One composition alone costs the engine process {cpu_each:.1f} CPU-seconds "
            f"(decoding, rendering and encoding, all its threads); with {CONCURRENT} at once, "
            f"{cpu_each_together:.1f} each (batched decoding shares the model's weights; the "
            f"clips cost the same). The median of {CONCURRENT} such compositions cannot finish "
            f"before {CONCURRENT // 2} of them are done on all {cores} cores: "
            f"{CONCURRENT // 2} x {cpu_each_together:.1f} / {cores} = {median_floor:.1f} s, "
            f"{ratio(median_floor / alone_p50)} the p50 alone, however the engine schedules "
            f"them. Below that, the goal of {ratio(GOAL_TOGETHER_RATIO)} needs cheaper "
            f"compositions or more cores.",
            f"Event-loop lag. SimCord's simulated Discord, its virtual clock and the members' "
            f"commands run on the bot's own event loop, so every callback the loop ran was timed "
            f"and put down to the simulation (SimCord's code and this benchmark's) or to the bot "
            f"(everything else: discord.py, the bot, the engine client, the database; SimCord's "
            f"simulated HTTP calls run inside the bot's tasks and count as the bot's). One pass "
            f"of the loop runs every callback that is ready, so the worst pass is how late a "
            f"timer can fire. With {CONCURRENT} at once the simulation kept the loop busy for "
            f"{callbacks['total_seconds']['simulation']:.1f} s (worst pass "
            f"{callbacks['worst_pass_seconds']['simulation'] * 1000:.0f} ms) and the bot for "
            f"{callbacks['total_seconds']['bot']:.2f} s (worst pass {lag * 1000:.0f} ms; its "
            f"longest callback: {callbacks['longest_bot_callback'] or 'none'}). A task sleeping "
            f"{TICK_SECONDS * 1000:.0f} ms at a time woke up at worst {ticker * 1000:.0f} ms late "
            f"(alone: {figures['lag']['alone']['worst_seconds'] * 1000:.0f} ms): that figure "
            f"is mostly the simulation's, which a real bot does not carry. The simulation's busy "
            f"time is also CPU taken from the engine on the same cores, so the times with "
            f"{CONCURRENT} at once above are somewhat pessimistic.",
        ]
    )
    return Report(
        markdown,
        [
            Headline(
                "/compose 4 x 16 bars through the bot, alone (p50)",
                seconds(alone_p50),
                f"goal: under {GOAL_ALONE_SECONDS:.0f} s",
            ),
            Headline(
                f"{CONCURRENT} /compose at once vs alone (p50)",
                ratio(slowdown),
                f"goal: within {ratio(GOAL_TOGETHER_RATIO)}; CPU floor on this machine: "
                f"{ratio(median_floor / alone_p50)}",
            ),
            Headline(
                "bot event loop, worst lag its own callbacks cause under load",
                f"{lag * 1000:.0f} ms (with SimCord's: {ticker * 1000:.0f} ms)",
                f"goal: under {GOAL_LAG_SECONDS * 1000:.0f} ms",
            ),
            Headline(
                "bot process, peak memory",
                f"{bot_peak:.0f} MB",
                f"goal: under {GOAL_BOT_MB:.0f} MB",
            ),
        ],
    )


SECTION = Section(
    "/compose end to end through the bot", ".venv/bin/python -m bench.compose_e2e", run
)

if __name__ == "__main__":
    main(SECTION)
