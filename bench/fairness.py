"""Fairness between servers: one server's composition while another floods the engine.

    .venv/bin/python -m bench.fairness [--quick]

Through the real engine process (`EngineClient.local()`, the shipped model): the victim
server's composition (4 candidates x 16 bars of engine/examples/motif.mid, /compose's defaults)
is timed alone, then while another server keeps FLOOD_IN_FLIGHT requests of one kind in flight
at every moment: slow seeds (seeds at the 20,000-note limit, composed for 1 bar: reading them is
the work), seed plays (a 2-minute band loop), piece exports (parts of MOTIF_MAX_RENDER_SECONDS
at its default, the most audio one render job makes: the bot exports a long piece in such
parts), then all three kinds at once. Each flooded composition is paired
with one alone just before it, and the median of the pairs' ratios is kept (goal: within 1.5x).
The bot caps a server at 2 requests in flight (MOTIF_MAX_INFLIGHT_PER_GUILD): these floods are
harsher than the bot lets one server be.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from symusic import Note, Score, Tempo, Track

from bench.machine import REPO_ROOT
from bench.markdown import ratio, seconds, table
from bench.section import Headline, Report, Section, main
from engine.api.client import ComposeRequest, EngineClient, EngineError
from engine.api.limits import DEFAULT_MAX_RENDER_SECONDS

SEED = REPO_ROOT / "engine" / "examples" / "motif.mid"
LOOP = REPO_ROOT / "engine" / "examples" / "band.mid"
VICTIM, FLOOD = 1, 2
BARS, CANDIDATES = 16, 4
FLOOD_IN_FLIGHT = 4  # per kind of request; twice the bot's default cap per server
SLOW_SEED_NOTES = 19_000  # just under the engine's limit of 20,000
PLAY_SECONDS, EXPORT_SECONDS = 120, DEFAULT_MAX_RENDER_SECONDS
AUDIO_BUDGET = 10 * 1024 * 1024  # Discord's upload limit for a server without boosts
REPEATS, QUICK_REPEATS = 3, 1
FLOOD_HEAD_START = 2.0  # seconds the flood runs before the victim composes: every queue fills
GOAL_RATIO = 1.5
IDLE_TIMEOUT = 300.0  # a flood's last export finishes rendering before the next flood starts


def slow_seed(notes: int = SLOW_SEED_NOTES) -> bytes:
    """Eight-note chords up to the note limit: the most reading and tokenizing a seed buys."""
    score = Score(480)
    score.tempos.append(Tempo(0, 120))
    track = Track("chords", 0, False)
    for i in range(notes):
        track.notes.append(Note((i // 8) * 120, 120, 48 + (i * 7) % 36, 80))
    score.tracks.append(track)
    return score.dumps_midi()


def looped(seconds: float) -> bytes:
    """The bundled band loop (piano, bass, flute, drums) repeated to last `seconds`."""
    loop = Score.from_file(str(LOOP))
    length = loop.end()
    repeats = int(seconds // loop.to("second").end())  # never past `seconds`
    piece = loop.copy()
    for track, source in zip(piece.tracks, loop.tracks, strict=True):
        for r in range(1, repeats):
            for note in source.notes:
                track.notes.append(
                    Note(note.time + r * length, note.duration, note.pitch, note.velocity)
                )
    return piece.dumps_midi()


@dataclass(frozen=True)
class Flood:
    name: str
    kinds: tuple[str, ...]  # "seeds", "plays", "exports"


FLOODS = [
    Flood("slow seeds", ("seeds",)),
    Flood("seed plays", ("plays",)),
    Flood("exports", ("exports",)),
    Flood("all three at once", ("seeds", "plays", "exports")),
]


async def flood_requests(engine: EngineClient) -> dict[str, Callable[[int], Awaitable[object]]]:
    seed, play, export = slow_seed(), looped(PLAY_SECONDS), looped(EXPORT_SECONDS)
    return {
        "seeds": lambda i: engine.compose(
            ComposeRequest(seed_midi=seed, bars=1, candidates=1, seed=i, guild_id=FLOOD)
        ),
        "plays": lambda i: engine.render(play, max_audio_bytes=AUDIO_BUDGET, guild_id=FLOOD),
        "exports": lambda i: engine.render(export, max_audio_bytes=AUDIO_BUDGET, guild_id=FLOOD),
    }


async def victim(engine: EngineClient, seed_midi: bytes, seed: int) -> tuple[float, dict]:
    started = time.perf_counter()
    result = await engine.compose(
        ComposeRequest(
            seed_midi=seed_midi, bars=BARS, candidates=CANDIDATES, seed=seed, guild_id=VICTIM
        )
    )
    return time.perf_counter() - started, result.timings


async def wait_idle(engine: EngineClient) -> None:
    deadline = time.monotonic() + IDLE_TIMEOUT
    while (await engine.stats()).jobs:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the engine still had jobs {IDLE_TIMEOUT:.0f} s after a flood")
        await asyncio.sleep(0.2)


async def under_flood(engine: EngineClient, requests: dict, flood: Flood | None, seed: int) -> dict:
    """One victim composition while the flood keeps its requests in flight; its time, its
    engine timings, and how many flood requests finished meanwhile."""
    served = refused = 0

    async def keep_sending(kind: str, worker: int) -> None:
        nonlocal served, refused
        for i in range(10**9):
            try:
                await requests[kind](1000 * worker + i)
                served += 1
            except EngineError:  # refused or failed: the flood sends the next one at once
                refused += 1

    workers = [
        asyncio.create_task(keep_sending(kind, n * FLOOD_IN_FLIGHT + w))
        for n, kind in enumerate(flood.kinds if flood else ())
        for w in range(FLOOD_IN_FLIGHT)
    ]
    try:
        if workers:
            await asyncio.sleep(FLOOD_HEAD_START)
        wall, timings = await victim(engine, SEED.read_bytes(), seed)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    await wait_idle(engine)
    return {"wall": wall, "timings": timings, "served": served, "refused": refused}


async def measure(repeats: int) -> dict:
    """Rounds of (alone, under a flood) pairs for every flood: the machine's drift during the
    run moves both members of a pair alike, so the ratio of each pair is what is kept."""
    runs: dict[str, list[tuple[dict, dict]]] = {f.name: [] for f in FLOODS}
    async with EngineClient.local() as engine:
        requests = await flood_requests(engine)
        await victim(engine, SEED.read_bytes(), 0)  # warm caches beyond the engine's own
        for r in range(repeats):
            for n, flood in enumerate(FLOODS):
                seed = 100 * r + 10 * n
                alone = await under_flood(engine, requests, None, seed)
                runs[flood.name].append(
                    (alone, await under_flood(engine, requests, flood, seed + 1))
                )
        stats = await engine.stats()
    return {"runs": runs, "device": stats.device, "max_rows": stats.max_rows}


STAGES = ("queue", "tokenize", "sample", "render")  # the engine's timings of a composition


def median_stage(runs: list[dict], stage: str) -> float:
    return statistics.median(run["timings"].get(stage, 0.0) for run in runs)


def run(quick: bool) -> Report:
    repeats = QUICK_REPEATS if quick else REPEATS
    figures = asyncio.run(measure(repeats))
    pairs = [pair for runs in figures["runs"].values() for pair in runs]
    alones = [alone for alone, _ in pairs]
    alone = statistics.median(a["wall"] for a in alones)
    rows = [
        [
            f"alone ({len(alones)} runs)",
            seconds(alone),
            "",
            "",
            *(seconds(median_stage(alones, k)) for k in STAGES),
        ]
    ]
    ratios = {}
    for name, runs in figures["runs"].items():
        flooded = [f for _, f in runs]
        ratios[name] = statistics.median(f["wall"] / a["wall"] for a, f in runs)
        served = sum(f["served"] for f in flooded)
        refused = sum(f["refused"] for f in flooded)
        rows.append(
            [
                f"under {name}",
                seconds(statistics.median(f["wall"] for f in flooded)),
                f"**{ratio(ratios[name])}**",
                f"{served} ({refused} refused)",
                *(seconds(median_stage(flooded, k)) for k in STAGES),
            ]
        )
    met = max(ratios.values()) <= GOAL_RATIO
    markdown = "\n\n".join(
        [
            f"The victim server composes {CANDIDATES} candidates x {BARS} bars of "
            f"`engine/examples/motif.mid` through the real engine process ({figures['device']}, "
            f"max_rows {figures['max_rows']}), alone and while another server keeps "
            f"{FLOOD_IN_FLIGHT} requests of each kind in flight (twice the bot's default cap per "
            f"server; the flood starts {FLOOD_HEAD_START:.0f} s ahead): slow seeds "
            f"({SLOW_SEED_NOTES:,}-note seeds composed for 1 bar), seed plays "
            f"({PLAY_SECONDS // 60:.0f}-minute band loop), exports "
            f"({EXPORT_SECONDS // 60:.0f}-minute "
            f"parts of a band loop, the most one render job makes), then all three. {repeats} "
            f"rounds; in each, every flood is paired with a composition alone just before it, and "
            f"the ratio is the median of the pairs' ratios (so the machine's drift cancels out). "
            f"The last four columns are the engine's own timings of the victim's composition "
            f"(medians). Goal: within {GOAL_RATIO}x of alone.",
            table(
                [
                    "victim's composition",
                    "wall",
                    "vs alone",
                    "flood requests served",
                    "queued",
                    "seed read",
                    "sampled",
                    "rendered",
                ],
                rows,
            ),
        ]
    )
    return Report(
        markdown,
        [
            Headline(
                "a server's /compose while another floods the engine "
                "(slow seeds / plays / exports / all)",
                " / ".join(ratio(r) for r in ratios.values()),
                f"goal: within {GOAL_RATIO}x of alone ({'met' if met else '**not met**'}; alone "
                f"{seconds(alone)})",
            )
        ],
    )


SECTION = Section(
    "Fairness between servers under a flood", ".venv/bin/python -m bench.fairness", run
)

if __name__ == "__main__":
    main(SECTION)
