"""Rendering speed, and one composition in-process stage by stage.

    .venv/bin/python -m bench.render_speed [--quick]

`Composer.compose` from the bundled seed for 1 and 4 candidates x 16 bars, the soundfont loaded
once: seconds of audio per second of wall time for FluidSynth plus OGG encoding as the engine
runs them (the synth renders one clip while earlier clips encode on other threads), then
FluidSynth and the encoder alone on one clip, and the stages of a 4-candidate composition.
"""

from __future__ import annotations

import statistics
import time

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
from engine.model.device import configure_threads

SEED = REPO_ROOT / "engine" / "examples" / "motif.mid"
BARS = 16
REPEATS, QUICK_REPEATS = 5, 2
COMPOSE_GOAL_SECONDS = 2.0
STAGES = {
    "tokenize": "tokenize the seed",
    "sample": "sample (prefill + batched steps)",
    "decode_midi": "decode to MIDI",
    "render": "render + encode (OGG Vorbis)",
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
                "OGG Vorbis encoding only",
                "1",
                f"{clip_seconds:.1f}",
                f"{encode_only:.2f}",
                f"{clip_seconds / encode_only:.0f}x",
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
    stages = table(
        ["stage (4 candidates)", "seconds"],
        [
            [label, seconds(statistics.median(r.timings[k] for r in runs[4]))]
            for k, label in STAGES.items()
        ],
    )
    total = statistics.median(r.timings["total"] for r in runs[4])
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
            stages,
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
