"""Loudness of the clips members hear: one level across a post, no jump at the seam.

    .venv/bin/python -m bench.loudness [--quick]

Seeds like members upload (bench/member_seeds.py: a band loop with drums, a 6/8 tune, a 5/4
groove, a waltz, a performed piano piece, a sax melody) and the bundled examples are composed
through `Composer.compose`: one post of 4 candidates, and one of 2 with `include_seed` for the
seam. Every clip is measured as members get it (the OGG decoded) with engine/audio/loudness.py's
BS.1770 meter. Beside it, in the same run, the same MIDI rendered the way the engine did
before: FluidSynth's output peak-normalised to -1 dBFS, encoded alike. The loudness step's
cost is timed on the same clips against FluidSynth and the encoder.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bench import member_seeds
from bench.markdown import table
from bench.ood_measure import clip_loudness, read_audio
from bench.section import Headline, Report, Section, main
from engine.audio.loudness import (
    CEILING_DBFS,
    LOUDNESS_OFFSET,
    TARGET_LUFS,
    hop_energies,
    normalise,
    true_peak_dbfs,
)
from engine.audio.render import SAMPLE_RATE, encode_ogg
from engine.core.composer import Composer, ComposeRequest
from engine.model.device import configure_threads

BARS, QUICK_BARS = 16, 8
CANDIDATES, SEAM_CANDIDATES = 4, 2
LONG_SEED = "long seed (320 bars)"  # with include_seed its clip would be 11 minutes
PEAK = 10 ** (CEILING_DBFS / 20)  # what peak normalisation aimed at
SHORT_TERM_SECONDS = 3.0  # EBU R128's short-term window: what a listener hears at the seam
SPREAD_GOAL_LU, SEAM_GOAL_LU = 1.0, 3.0  # issue 13


def peak_normalised(pcm: np.ndarray) -> np.ndarray:
    """The engine's level before engine/audio/loudness.py: the clip's peak at -1 dBFS."""
    peak = float(np.abs(pcm).max(initial=0.0))
    return pcm * (PEAK / peak) if peak > 0 else pcm


def short_term(pcm: np.ndarray, rate: int) -> float | None:
    """Ungated K-weighted loudness of a window (EBU R128 short-term when it lasts 3 s);
    None when it is silent."""
    meter = hop_energies(pcm, rate)
    power = float(meter.weighted.sum()) / max(1, len(meter.weighted) * meter.hop)
    return LOUDNESS_OFFSET + 10 * float(np.log10(power)) if power > 0 else None


@dataclass
class Clips:
    """What one way of levelling made of a seed's clips."""

    loudness: list[float] = field(default_factory=list)  # LUFS, the post's clips
    true_peaks: list[float] = field(default_factory=list)  # dBTP, every clip
    seam_integrated: list[float] = field(default_factory=list)  # continuation - seed side, LU
    seam_short_term: list[float] = field(default_factory=list)  # 3 s after - 3 s before, LU

    @property
    def spread(self) -> float:
        return max(self.loudness) - min(self.loudness)

    def add(self, audio: bytes, seam_seconds: float | None = None) -> None:
        pcm, rate = read_audio(audio)
        self.true_peaks.append(true_peak_dbfs(pcm))
        if seam_seconds is None:
            self.loudness.append(clip_loudness(pcm, rate))
            return
        cut, window = round(seam_seconds * rate), round(SHORT_TERM_SECONDS * rate)
        self.seam_integrated.append(clip_loudness(pcm[cut:], rate) - clip_loudness(pcm[:cut], rate))
        before, after = (
            short_term(pcm[cut - window : cut], rate),
            short_term(pcm[cut : cut + window], rate),
        )
        if before is not None and after is not None:
            self.seam_short_term.append(after - before)


@dataclass
class SeedRun:
    name: str
    now: Clips = field(default_factory=Clips)
    before: Clips = field(default_factory=Clips)
    synth_seconds: list[float] = field(default_factory=list)  # per clip
    loudness_seconds: list[float] = field(default_factory=list)
    encode_seconds: list[float] = field(default_factory=list)
    audio_seconds: list[float] = field(default_factory=list)


def timed(work: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = work()
    return result, time.perf_counter() - started


def run_seed(composer: Composer, name: str, midi: bytes, bars: int) -> SeedRun:
    run, renderer = SeedRun(name), composer.renderer
    post = composer.compose(midi, ComposeRequest(bars=bars, candidates=CANDIDATES, seed=1))
    for candidate in post.candidates:
        run.now.add(candidate.audio)
        raw, synth = timed(lambda c=candidate: renderer.synthesise(c.midi))
        run.synth_seconds.append(synth)
        run.audio_seconds.append(len(raw) / SAMPLE_RATE)
        before = peak_normalised(raw)
        _, loudness = timed(lambda r=raw: normalise(r, SAMPLE_RATE))
        run.loudness_seconds.append(loudness)
        encoded, encode = timed(lambda b=before: encode_ogg(b, SAMPLE_RATE))
        run.encode_seconds.append(encode)
        run.before.add(encoded.data)
    seam = composer.compose(
        midi, ComposeRequest(bars=bars, candidates=SEAM_CANDIDATES, seed=2, include_seed=True)
    )
    for candidate in seam.candidates:
        run.now.add(candidate.audio, seam.seed_seconds)
        before = peak_normalised(renderer.synthesise(candidate.midi))
        run.before.add(encode_ogg(before, SAMPLE_RATE).data, seam.seed_seconds)
    return run


def seeds() -> dict[str, bytes]:
    made = {
        name: member_seeds.midi_bytes(make())
        for name, make in member_seeds.SEEDS.items()
        if name != LONG_SEED
    }
    return made | {
        name: member_seeds.midi_bytes(score) for name, score in member_seeds.bundled().items()
    }


def worst(values: list[float]) -> float:
    return max((abs(v) for v in values), default=float("nan"))


def mean_abs(values: list[float]) -> float:
    return statistics.fmean(abs(v) for v in values) if values else float("nan")


def run(quick: bool) -> Report:
    configure_threads()
    bars = QUICK_BARS if quick else BARS
    composer = Composer()
    try:
        runs = [run_seed(composer, name, midi, bars) for name, midi in seeds().items()]
    finally:
        composer.close()

    rows = []
    for r in runs:

        def both(pick: Callable[[Clips], float], r: SeedRun = r) -> list[str]:
            return [f"{pick(r.before):.1f}", f"{pick(r.now):.1f}"]

        rows.append(
            [
                r.name,
                *both(lambda c: c.spread),
                *both(lambda c: worst(c.seam_integrated)),
                *both(lambda c: worst(c.seam_short_term)),
                f"{statistics.median(r.now.loudness):.1f}",
                *both(lambda c: max(c.true_peaks)),
            ]
        )
    every = {kind: Clips() for kind in ("before", "now")}
    for r in runs:
        for kind, clips in (("before", r.before), ("now", r.now)):
            for key in ("loudness", "true_peaks", "seam_integrated", "seam_short_term"):
                getattr(every[kind], key).extend(getattr(clips, key))
    spreads = {kind: [getattr(r, kind).spread for r in runs] for kind in every}
    summary = table(
        ["over all seeds", "before: peak at -1 dBFS", "now: -16 LUFS", "goal"],
        [
            [
                "loudness spread across the clips of a post, mean / worst (LU)",
                *(f"{statistics.fmean(spreads[k]):.1f} / {max(spreads[k]):.1f}" for k in every),
                f"<= {SPREAD_GOAL_LU:.0f} LU",
            ],
            [
                "clips' loudness, lowest / highest (LUFS)",
                *(f"{min(every[k].loudness):.1f} / {max(every[k].loudness):.1f}" for k in every),
                f"{TARGET_LUFS:.0f}",
            ],
            [
                "seam with include_seed, integrated: continuation vs seed, mean / worst (LU)",
                *(
                    f"{mean_abs(every[k].seam_integrated):.1f} / "
                    f"{worst(every[k].seam_integrated):.1f}"
                    for k in every
                ),
                f"<= {SEAM_GOAL_LU:.0f} LU",
            ],
            [
                f"seam, short-term: {SHORT_TERM_SECONDS:.0f} s after vs before, mean / worst (LU)",
                *(
                    f"{mean_abs(every[k].seam_short_term):.1f} / "
                    f"{worst(every[k].seam_short_term):.1f}"
                    for k in every
                ),
                "-",
            ],
            [
                "true peak after encoding, highest (dBTP)",
                *(f"{max(every[k].true_peaks):+.1f}" for k in every),
                "under 0",
            ],
        ],
    )
    per_seed = table(
        [
            "seed",
            "spread before",
            "spread now",
            "seam before",
            "seam now",
            "seam 3 s before",
            "seam 3 s now",
            "median LUFS now",
            "true peak before",
            "true peak now",
        ],
        rows,
    )
    clip_count = len(every["now"].true_peaks)
    synth = sum(sum(r.synth_seconds) for r in runs)
    loudness = sum(sum(r.loudness_seconds) for r in runs)
    encode = sum(sum(r.encode_seconds) for r in runs)
    audio = sum(sum(r.audio_seconds) for r in runs)
    cost = table(
        [
            "step, over the posts' clips",
            "seconds",
            "per minute of audio",
            "share of render + encode",
        ],
        [
            [
                label,
                f"{s:.2f}",
                f"{60 * s / audio:.3f} s",
                f"{100 * s / (synth + loudness + encode):.0f}%",
            ]
            for label, s in (
                ("FluidSynth", synth),
                ("loudness (meter, gains, limiter)", loudness),
                ("OGG Vorbis encoding", encode),
            )
        ],
    )
    markdown = "\n\n".join(
        [
            f"{len(runs)} seeds (bench/member_seeds.py's, but the 320-bar one, and the bundled "
            f"`engine/examples/*.mid`), each composed once with {CANDIDATES} candidates of {bars} "
            f"bars and once with {SEAM_CANDIDATES} and `include_seed`: {clip_count} clips, "
            f"{audio / 60:.1f} minutes of audio in the {CANDIDATES}-candidate posts. Loudness is "
            "BS.1770-4 integrated loudness of the decoded OGG. The seam is measured on both "
            "sides of the seed's end: integrated (the issue's measure, each side as a whole) and "
            f"as the {SHORT_TERM_SECONDS:.0f} s just before against the {SHORT_TERM_SECONDS:.0f} "
            "s just after (what a listener hears there, which also moves with the music: a seed "
            "that ends softly, a continuation that opens sparsely). True peak 4x oversampled. "
            "**Before** is the same MIDI as the engine rendered it until now "
            "(the peak at -1 dBFS), "
            "measured in this run.",
            summary,
            per_seed,
            f"What the loudness step costs, timed one clip at a time on the {CANDIDATES}-candidate "
            "posts' clips:",
            cost,
        ]
    )
    return Report(
        markdown,
        [
            Headline(
                "loudness spread across a post's clips, mean / worst",
                f"{statistics.fmean(spreads['now']):.1f} / {max(spreads['now']):.1f} LU",
                f"peak-normalised: {statistics.fmean(spreads['before']):.1f} / "
                f"{max(spreads['before']):.1f} LU; goal <= {SPREAD_GOAL_LU:.0f} LU",
            ),
            Headline(
                "include_seed: seam jump, worst (integrated / 3 s)",
                f"{worst(every['now'].seam_integrated):.1f} / "
                f"{worst(every['now'].seam_short_term):.1f} LU",
                f"peak-normalised: {worst(every['before'].seam_integrated):.1f} / "
                f"{worst(every['before'].seam_short_term):.1f} LU; goal <= "
                f"{SEAM_GOAL_LU:.0f} LU",
            ),
            Headline(
                "true peak after encoding, highest",
                f"{max(every['now'].true_peaks):+.1f} dBTP",
                f"limiter ceiling {CEILING_DBFS:.0f} dBFS before encoding",
            ),
            Headline(
                "loudness step, share of render + encode",
                f"{100 * loudness / (synth + loudness + encode):.0f}%",
                f"{60 * loudness / audio:.3f} s per minute of audio",
            ),
        ],
    )


SECTION = Section(
    "Loudness: every clip at one level, no jump at the seam",
    ".venv/bin/python -m bench.loudness",
    run,
)

if __name__ == "__main__":
    main(SECTION)
