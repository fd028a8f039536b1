"""Work per request: the engine's memory and CPU for the worst requests its limits allow.

    .venv/bin/python -m bench.work_limits [--quick]

A tiny seed at 20 bpm in 4/2 asking for 64 bars once made 26-minute clips (482 CPU-seconds,
the engine from 465 MB to 3.4 GB). The engine now refuses what is over its work limits
(engine/api/limits.py) before any decoding; this measures, on a real engine process, how fast
that refusal is and what the largest requests still allowed cost: compositions at the most
bars the limits allow, and render jobs of whole MIDI files (a long piece, cut at
MOTIF_MAX_RENDER_SECONDS; a dense one near the render job's note limit). For each, the
engine's peak resident memory (VmHWM) and its CPU-seconds, and the peak of its seed reader
children (they read and tokenize the seeds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import dataclass

from symusic import Note, Score, Tempo, TimeSignature, Track

from bench.markdown import table
from bench.section import Headline, Report, Section, main
from engine.api.client import BadRequest, ComposeRequest, EngineClient
from engine.api.config import EngineSettings
from engine.api.limits import MAX_RENDER_NOTES
from engine.api.metre import vocabulary_metres
from engine.api.seed_midi import SeedFacts
from engine.api.workload import Workload

TICKS = 480


def slow_seed() -> bytes:
    """Four quarter notes at 20 bpm in 4/2: under a hundred bytes, 24-second bars."""
    score = Score(TICKS)
    score.tempos.append(Tempo(0, 20.0))
    score.time_signatures.append(TimeSignature(0, 4, 2))
    track = Track("piano", 0, False)
    track.notes.extend(Note(i * TICKS, TICKS, 60 + 4 * i, 90) for i in range(4))
    score.tracks.append(track)
    return score.dumps_midi()


def dense_seed(notes: int) -> bytes:
    """`notes` notes in 20 bars of 4/4 at 120 bpm (40 s): the most a seed may have."""
    rng = random.Random(0)
    score = Score(TICKS)
    score.tempos.append(Tempo(0, 120.0))
    score.time_signatures.append(TimeSignature(0, 4, 4))
    track = Track("piano", 0, False)
    span = 80 * TICKS
    track.notes.extend(
        Note(i * span // notes, TICKS // 2, 40 + rng.randrange(48), 60 + rng.randrange(60))
        for i in range(notes)
    )
    score.tracks.append(track)
    return score.dumps_midi()


def most_bars(seed: bytes | None, **params: object) -> int:
    """The most bars the engine's limits allow for this seed and these options."""
    limits = EngineSettings.from_env().work
    facts = SeedFacts.of(Score.from_midi(seed)) if seed is not None else None
    fits = [
        bars
        for bars in range(1, 65)
        if Workload.of(ComposeRequest(bars=bars, **params), facts, vocabulary_metres()).fits(limits)
    ]
    return max(fits)


def piece(minutes: float, notes_per_beat: int = 1) -> bytes:
    """A piano piece at 120 bpm lasting `minutes`, `notes_per_beat` notes on every beat."""
    score = Score(TICKS)
    score.tempos.append(Tempo(0, 120.0))
    track = Track("piano", 0, False)
    for beat in range(int(minutes * 120)):
        track.notes.extend(
            Note(beat * TICKS, TICKS, 36 + (beat + k) % 60, 80) for k in range(notes_per_beat)
        )
    score.tracks.append(track)
    return score.dumps_midi()


@dataclass
class Measured:
    name: str
    audio_seconds: float
    wall: float
    cpu: float
    peak_mb: float
    children_peak_mb: float  # the largest of the engine's children (its seed readers)


def _proc(pid: int) -> tuple[float, float]:
    """(CPU-seconds so far, peak resident MB) of process `pid`."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        hwm = next(line for line in f if line.startswith("VmHWM"))
    return cpu, int(hwm.split()[1]) / 1024


def _children_peak(pid: int) -> float:
    """The largest peak resident MB among the child processes of `pid` (0 without any)."""
    children: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            children += [int(child) for child in f.read().split()]
    peaks = []
    for child in children:
        with contextlib.suppress(FileNotFoundError, StopIteration):  # gone, or a zombie
            peaks.append(_proc(child)[1])
    return max(peaks, default=0.0)


async def measure(quick: bool) -> tuple[dict[str, float], list[Measured], str]:
    slow = slow_seed()
    dense = dense_seed(EngineSettings.from_env().work.max_seed_notes)
    requests = [
        (
            f"slow seed (20 bpm, 4/2), 4 x {most_bars(slow)} bars",
            ComposeRequest(seed_midi=slow, bars=most_bars(slow), seed=1),
        ),
        (f"no seed, 4 x {most_bars(None)} bars", ComposeRequest(bars=most_bars(None), seed=1)),
    ]
    if not quick:
        bars = most_bars(dense, include_seed=True)
        requests.append(
            (
                f"20,000-note seed included, 4 x {bars} bars",
                ComposeRequest(seed_midi=dense, bars=bars, include_seed=True, seed=1),
            )
        )
    limits = EngineSettings.from_env().work
    render_minutes = limits.max_render_seconds / 60
    renders = [(f"render job: a 26-minute piece (cut at {render_minutes:g} minutes)", piece(26))]
    if not quick:
        # Just under the notes one render job plays, in the most audio it makes.
        per_beat = MAX_RENDER_NOTES // int(render_minutes * 120)
        renders.append(
            (
                f"render job: {per_beat * int(render_minutes * 120):,} notes in "
                f"{render_minutes:g} minutes",
                piece(render_minutes, per_beat),
            )
        )
    async with EngineClient.local() as engine:
        pid = engine.engine_info.pid
        await engine.compose(ComposeRequest(bars=1, candidates=1, seed=0))
        start_cpu, start_mb = _proc(pid)
        started = time.perf_counter()
        try:
            await engine.compose(ComposeRequest(seed_midi=slow, bars=64, seed=1))
            refusal = "not refused"
        except BadRequest as exc:
            refusal = str(exc)
        refused = {
            "seconds": time.perf_counter() - started,
            "cpu": _proc(pid)[0] - start_cpu,
            "bytes": len(slow),
        }
        results = []
        for name, request in requests:
            before_cpu, _ = _proc(pid)
            began = time.perf_counter()
            result = await engine.compose(request)
            cpu, peak = _proc(pid)
            results.append(
                Measured(
                    name,
                    sum(c.seconds for c in result.candidates),
                    time.perf_counter() - began,
                    cpu - before_cpu,
                    peak,
                    _children_peak(pid),
                )
            )
        for name, midi in renders:
            before_cpu, _ = _proc(pid)
            began = time.perf_counter()
            rendered = await engine.render(midi)
            cpu, peak = _proc(pid)
            results.append(
                Measured(
                    name,
                    rendered.seconds,
                    time.perf_counter() - began,
                    cpu - before_cpu,
                    peak,
                    _children_peak(pid),
                )
            )
        refused["start_mb"] = start_mb
    return refused, results, refusal


def run(quick: bool) -> Report:
    refused, results, refusal = asyncio.run(measure(quick))
    limits = EngineSettings.from_env().work
    peak = max(r.peak_mb for r in results)
    rows = [
        [
            r.name,
            f"{r.audio_seconds:.0f} s",
            f"{r.wall:.1f} s",
            f"{r.cpu:.1f} s",
            f"{r.peak_mb:.0f} MB",
            f"{r.children_peak_mb:.0f} MB",
        ]
        for r in results
    ]
    markdown = "\n\n".join(
        [
            f"Limits: {limits.max_clip_seconds:.0f} s per clip, "
            f"{limits.max_composition_seconds:.0f} s per composition, "
            f"{limits.max_composition_tokens:,} generated ids, "
            f"{limits.max_seed_notes:,} seed notes, "
            f"{limits.max_render_seconds:.0f} s of audio per render job "
            "(MOTIF_MAX_* variables; defaults in engine/api/limits.py).",
            f"The {refused['bytes']:.0f}-byte seed at 20 bpm in 4/2 asking for 64 bars: refused in "
            f"{refused['seconds'] * 1000:.0f} ms ({refused['cpu']:.2f} CPU-seconds of the engine) "
            f"with: *{refusal}*.",
            "The largest requests the limits allow, one after another on one engine process "
            f"(resident {refused['start_mb']:.0f} MB after warming up; peak is the process's "
            "high-water mark so far; the seed readers are the engine's child processes, whose "
            "largest peak is shown):",
            table(
                [
                    "request",
                    "audio (all clips)",
                    "wall",
                    "engine CPU",
                    "engine peak",
                    "seed reader peak",
                ],
                rows,
            ),
        ]
    )
    return Report(
        markdown,
        [
            Headline(
                "engine peak memory, worst request the work limits allow",
                f"{peak:.0f} MB",
                "a 20 bpm 4/2 seed x 64 bars once took it to 3.4 GB",
            ),
            Headline(
                "a request over the work limits",
                f"refused in {refused['seconds'] * 1000:.0f} ms",
                "before any decoding",
            ),
        ],
    )


SECTION = Section(
    "Work per request: the worst allowed", ".venv/bin/python -m bench.work_limits", run
)

if __name__ == "__main__":
    main(SECTION)
