"""Rendering speed, and one composition in-process stage by stage.

    .venv/bin/python -m bench.render_speed [--quick]

`Composer.compose` from the bundled seed for 1 and 4 candidates x 16 bars, the soundfont loaded
once: seconds of audio per second of wall time for FluidSynth plus OGG encoding as the engine
runs them (the synth renders one clip while earlier clips encode on other threads), then
FluidSynth and the encoder alone on one clip, the stages of a 4-candidate composition, and
what a composition costs in CPU seconds (all of this process's threads) with the clips encoded
as now (Opus through libopus) and as before (libsndfile's Vorbis), in turn in the same run.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Iterator

from symusic import Score

from bench.machine import REPO_ROOT
from bench.markdown import seconds, table
from bench.section import Headline, Report, Section, main
from engine.audio.render import SAMPLE_RATE, Renderer, encode_ogg
from engine.core.composer import (
    ENCODER_THREADS,
    Composer,
    ComposeRequest,
    ComposeResult,
    warm_up,
)
from engine.generation import stages
from engine.model.device import configure_threads

SEED = REPO_ROOT / "engine" / "examples" / "motif.mid"
BARS = 16
REPEATS, QUICK_REPEATS = 5, 2
COMPOSE_GOAL_SECONDS = 2.0
CPU_GOAL_SECONDS = 1.5  # issue 16
STAGES = {
    "tokenize": "tokenize the seed",
    "sample": "sample (prefill + batched steps)",
    "decode_midi": "decode to MIDI",
    "render": "render + encode (Ogg Opus)",
    "pianoroll": "piano roll",
    "total": "**total**",
}


def audio_seconds(run: ComposeResult) -> float:
    return sum(c.seconds for c in run.candidates)


def timed(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@contextlib.contextmanager
def encoding_as_before() -> Iterator[None]:
    """Compositions encode their clips with libsndfile's Vorbis, as the engine did before."""
    now = stages.encode_ogg
    stages.encode_ogg = functools.partial(encode_ogg, codec="vorbis")
    try:
        yield
    finally:
        stages.encode_ogg = now


def cpu_per_composition(composer: Composer, seed: bytes, repeats: int) -> dict[str, list[float]]:
    """CPU seconds of this process per 4 x 16-bar composition, now and before, alternating
    (so the machine's drift falls on both alike)."""
    costs: dict[str, list[float]] = {"now": [], "before": []}
    for r in range(repeats):
        for kind in costs:
            with encoding_as_before() if kind == "before" else contextlib.nullcontext():
                started = time.process_time()
                composer.compose(seed, ComposeRequest(bars=BARS, candidates=4, seed=r))
                costs[kind].append(time.process_time() - started)
    return costs


def run(quick: bool) -> Report:
    threads = configure_threads()
    repeats = QUICK_REPEATS if quick else REPEATS
    started = time.perf_counter()
    renderer = Renderer()
    load_seconds = time.perf_counter() - started
    composer = Composer(renderer=renderer)
    try:
        warm_up(composer)
        seed = SEED.read_bytes()
        runs = {
            k: [
                composer.compose(seed, ComposeRequest(bars=BARS, candidates=k, seed=r))
                for r in range(repeats)
            ]
            for k in (1, 4)
        }
        clip = Score.from_midi(runs[1][0].candidates[0].midi)
        pcm = renderer.render(clip)
        clip_seconds = len(pcm) / SAMPLE_RATE
        synth_only = timed(repeats, lambda: renderer.render(clip))
        encode_only = timed(repeats, lambda: encode_ogg(pcm, SAMPLE_RATE))
        vorbis_only = timed(repeats, lambda: encode_ogg(pcm, SAMPLE_RATE, codec="vorbis"))
        costs = cpu_per_composition(composer, seed, repeats)
    finally:
        composer.close()

    audio = {k: statistics.median(audio_seconds(r) for r in runs[k]) for k in runs}
    wall = {k: statistics.median(r.timings["render"] for r in runs[k]) for k in runs}
    speed = table(
        ["", "candidates", "audio, s", "wall, s", "audio s per wall s"],
        [
            [
                "FluidSynth only",
                "1",
                f"{clip_seconds:.1f}",
                f"{synth_only:.2f}",
                f"{clip_seconds / synth_only:.0f}x",
            ],
            [
                "Ogg Opus encoding only (libopus)",
                "1",
                f"{clip_seconds:.1f}",
                f"{encode_only:.2f}",
                f"{clip_seconds / encode_only:.0f}x",
            ],
            [
                "Ogg Vorbis encoding only (libsndfile, before)",
                "1",
                f"{clip_seconds:.1f}",
                f"{vorbis_only:.2f}",
                f"{clip_seconds / vorbis_only:.0f}x",
            ],
            *(
                [
                    "render + encode, as the engine runs them",
                    str(k),
                    f"{audio[k]:.1f}",
                    f"{wall[k]:.2f}",
                    f"**{audio[k] / wall[k]:.0f}x**",
                ]
                for k in runs
            ),
        ],
    )
    stage_table = table(
        ["stage (4 candidates)", "seconds"],
        [
            [label, seconds(statistics.median(r.timings[k] for r in runs[4]))]
            for k, label in STAGES.items()
        ],
    )
    total = statistics.median(r.timings["total"] for r in runs[4])
    cpu = {kind: statistics.median(c) for kind, c in costs.items()}
    ratios = statistics.median(n / b for n, b in zip(costs["now"], costs["before"], strict=True))
    cpu_table = table(
        ["4 x 16 bars, CPU seconds of the process", "median", "runs"],
        [
            ["clips in Ogg Opus through libopus (now)", f"{cpu['now']:.2f} s", str(repeats)],
            [
                "clips in Ogg Vorbis through libsndfile (before)",
                f"{cpu['before']:.2f} s",
                str(repeats),
            ],
            ["now / before (median of the pairs)", f"{ratios:.2f}x", ""],
        ],
    )
    tokens = statistics.mean(c.tokens for r in runs[4] for c in r.candidates)
    markdown = "\n\n".join(
        [
            f"Seed `engine/examples/motif.mid`, {BARS} bars per candidate ({clip_seconds:.0f} s "
            f"clips with the release tail), median of {repeats} compositions per row; soundfont "
            f"`{renderer.soundfont.name}` loaded once in {load_seconds:.2f} s; {ENCODER_THREADS} "
            f"encoder threads; {threads} torch thread(s).",
            speed,
            f"One composition in-process (`Composer.compose`, no engine process, no bot), "
            f"4 candidates of {tokens:.0f} tokens on average, median of {repeats}; goal: under "
            f"{COMPOSE_GOAL_SECONDS:.0f} s in all:",
            stage_table,
            "What one composition costs in CPU (decoding, rendering, encoding on every thread; "
            f"goal: at most {CPU_GOAL_SECONDS} s), now and before in turn:",
            cpu_table,
        ]
    )
    return Report(
        markdown,
        [
            Headline(
                "render + OGG encode, 4 candidates",
                f"{audio[4] / wall[4]:.0f}x real time",
                f"1 candidate: {audio[1] / wall[1]:.0f}x",
            ),
            Headline(
                "CPU per composition, 4 x 16 bars in-process",
                f"{cpu['now']:.2f} s",
                f"before (Vorbis): {cpu['before']:.2f} s, {ratios:.2f}x; "
                f"goal: at most {CPU_GOAL_SECONDS} s",
            ),
            Headline(
                "compose 4 x 16 bars in-process",
                seconds(total),
                f"goal: under {COMPOSE_GOAL_SECONDS:.0f} s",
            ),
        ],
    )


SECTION = Section(
    "Rendering and one composition in-process", ".venv/bin/python -m bench.render_speed", run
)

if __name__ == "__main__":
    main(SECTION)
