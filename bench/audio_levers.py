"""What a clip costs to make, lever by lever, and how the clips sound before and after.

    .venv/bin/python -m bench.audio_levers [--quick]

The 4 candidates of a 16-bar composition from two seeds (the bundled `motif.mid`, piano, and
bench/member_seeds.py's band loop, with drums and cymbals) are made again with each lever:
FluidSynth's sample rate, its reverb and chorus, and the encoders (libsndfile's Vorbis, Opus
and MP3; libopus called directly at several complexities), every one timed in CPU seconds of
its own thread on the same clips in the same run. Then the clips as the engine made them
before (48 kHz, libsndfile's Vorbis at its default quality) and now, decoded, side by side:
loudness, true peak, spectral centroid and energy per octave band.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from bench import member_seeds
from bench.machine import REPO_ROOT
from bench.markdown import table
from bench.ood_measure import clip_loudness, read_audio
from bench.section import Headline, Report, Section, main
from engine.audio import opus
from engine.audio.loudness import normalise, true_peak_dbfs
from engine.audio.render import (
    OPUS_BITRATES,
    OPUS_COMPLEXITY,
    SAMPLE_RATE,
    WRITE_BLOCK_FRAMES,
    Renderer,
    encode_ogg,
)
from engine.core.composer import Composer, ComposeRequest
from engine.model.device import configure_threads

BARS, QUICK_BARS = 16, 8
CANDIDATES = 4
# Octave bands in Hz; the last holds what a 24 kHz rate cuts (cymbals' and hi-hats' air).
BANDS = (0, 63, 125, 250, 500, 1_000, 2_000, 4_000, 8_000, 12_000, 16_000, 24_000)
SYNTH_LEVERS: dict[str, tuple[int, dict[str, int]]] = {
    "48 kHz (now)": (48_000, {}),
    "48 kHz, no reverb": (48_000, {"synth.reverb.active": 0}),
    "48 kHz, no chorus": (48_000, {"synth.chorus.active": 0}),
    "48 kHz, polyphony 64 (of 256)": (48_000, {"synth.polyphony": 64}),
    "32 kHz": (32_000, {}),
    "24 kHz": (24_000, {}),
}


def libsndfile(pcm: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    out = io.BytesIO()
    with sf.SoundFile(out, "w", rate, pcm.shape[1], format=fmt, subtype=subtype) as f:
        for start in range(0, len(pcm), WRITE_BLOCK_FRAMES):
            f.write(pcm[start : start + WRITE_BLOCK_FRAMES])
    return out.getvalue()


def libopus(complexity: int, bitrate: int = OPUS_BITRATES[0]) -> Callable[..., bytes]:
    return lambda pcm, rate: opus.encode(pcm, rate, bitrate=bitrate, complexity=complexity)


ENCODERS: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "Vorbis, libsndfile default quality (before)": lambda p, r: libsndfile(p, r, "OGG", "VORBIS"),
    "Opus, libsndfile default (~122 kb/s)": lambda p, r: libsndfile(p, r, "OGG", "OPUS"),
    "MP3, libsndfile default (LAME)": lambda p, r: libsndfile(p, r, "MP3", "MPEG_LAYER_III"),
    **{
        f"Opus, libopus complexity {c}, {OPUS_BITRATES[0] // 1000} kb/s"
        + (" (now)" if c == OPUS_COMPLEXITY else ""): libopus(c)
        for c in (10, OPUS_COMPLEXITY, 2, 0)
    },
}
BEFORE, NOW = next(iter(ENCODERS)), next(k for k in ENCODERS if k.endswith("(now)"))


def cpu(work: Callable[[], object]) -> tuple[object, float]:
    started = time.thread_time()
    result = work()
    return result, time.thread_time() - started


@dataclass
class Spectrum:
    bands_db: np.ndarray  # energy per band, dB re the clip's total
    centroid_hz: float


def spectrum(pcm: np.ndarray, rate: int) -> Spectrum:
    mono = pcm.mean(axis=1)
    power = np.square(np.abs(np.fft.rfft(mono)))
    freqs = np.fft.rfftfreq(len(mono), 1 / rate)
    total = power.sum()
    edges = zip(BANDS, BANDS[1:], strict=False)
    bands = np.array([power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in edges])
    with np.errstate(divide="ignore"):
        return Spectrum(10 * np.log10(bands / total), float((freqs * power).sum() / total))


def snr_db(reference: np.ndarray, decoded: np.ndarray) -> float:
    """Waveform signal-to-noise ratio of a decoded clip: a rough measure (perceptual coders
    fill bands with shaped noise, which lowers it without being heard), compared across the
    encoders on the same clips only."""
    n = min(len(reference), len(decoded))
    noise = np.square(decoded[:n] - reference[:n], dtype=np.float64).sum()
    return float(10 * np.log10(np.square(reference[:n], dtype=np.float64).sum() / noise))


def compose_clips(bars: int) -> dict[str, list[bytes]]:
    composer = Composer()
    try:
        seeds = {
            "motif (piano)": (REPO_ROOT / "engine" / "examples" / "motif.mid").read_bytes(),
            "band loop (drums)": member_seeds.midi_bytes(member_seeds.band_loop()),
        }
        return {
            name: [
                c.midi
                for c in composer.compose(
                    midi, ComposeRequest(bars=bars, candidates=CANDIDATES, seed=1)
                ).candidates
            ]
            for name, midi in seeds.items()
        }
    finally:
        composer.close()


def hertz(f: int) -> str:
    return f"{f / 1000:g}k" if f >= 1000 else str(f)


def band_label(i: int) -> str:
    return f"{hertz(BANDS[i])}-{hertz(BANDS[i + 1])} Hz"


def run(quick: bool) -> Report:
    configure_threads()
    clips = compose_clips(QUICK_BARS if quick else BARS)
    midis = [m for ms in clips.values() for m in ms]

    synth_cpu: dict[str, list[float]] = {}
    audio_seconds = 0.0
    for label, (rate, settings) in SYNTH_LEVERS.items():
        renderer = Renderer(settings=settings)
        try:
            renderer.synthesise(midis[0], sample_rate=rate)  # warm: the synth is made lazily
            for midi in midis:
                pcm, took = cpu(lambda m=midi, r=rate, s=renderer: s.synthesise(m, sample_rate=r))
                synth_cpu.setdefault(label, []).append(took)
                audio_seconds += len(pcm) / rate if label == "48 kHz (now)" else 0.0
        finally:
            renderer.close()

    renderer = Renderer()
    pcm48: list[np.ndarray] = []
    normalise_cpu: dict[int, list[float]] = {SAMPLE_RATE: [], 24_000: []}
    pcm24: list[np.ndarray] = []
    try:
        for midi in midis:
            for rate, into in ((SAMPLE_RATE, pcm48), (24_000, pcm24)):
                raw = renderer.synthesise(midi, sample_rate=rate)
                done, took = cpu(lambda r=raw, s=rate: normalise(r, s))
                normalise_cpu[rate].append(took)
                into.append(done)
    finally:
        renderer.close()

    encoded: dict[str, list[bytes]] = {}
    encode_cpu: dict[str, list[float]] = {}
    for label, encode in ENCODERS.items():
        for pcm in pcm48:
            data, took = cpu(lambda e=encode, p=pcm: e(p, SAMPLE_RATE))
            encoded.setdefault(label, []).append(data)
            encode_cpu.setdefault(label, []).append(took)
    alt = f"24 kHz, Opus complexity {OPUS_COMPLEXITY}"
    for pcm in pcm24:
        data, took = cpu(lambda p=pcm: encode_ogg(p, 24_000).data)
        encoded.setdefault(alt, []).append(data)
        encode_cpu.setdefault(alt, []).append(took)

    n = len(midis)
    per_clip = audio_seconds / n

    def mean(values: list[float]) -> float:
        return statistics.fmean(values)

    synth_rows = [
        [label, f"{mean(t):.3f} s", f"{mean(t) / mean(synth_cpu['48 kHz (now)']):.2f}x"]
        for label, t in synth_cpu.items()
    ]
    encoder_rows = []
    for label, datas in encoded.items():
        if label == alt:
            continue
        decoded = [read_audio(d)[0] for d in datas]
        pairs = list(zip(pcm48, datas, decoded, strict=True))
        kbps = mean([8 * len(d) / 1000 / (len(p) / SAMPLE_RATE) for p, d, _ in pairs])
        encoder_rows.append(
            [
                label,
                f"{mean(encode_cpu[label]):.3f} s",
                f"{mean(encode_cpu[label]) / mean(encode_cpu[BEFORE]):.2f}x",
                f"{kbps:.0f}",
                f"{statistics.median(snr_db(p, x) for p, _, x in pairs):.1f}",
            ]
        )

    # The clips members hear: before, now, and the 24 kHz alternative.
    kinds = {
        "before: 48 kHz, Vorbis": encoded[BEFORE],
        f"now: 48 kHz, Opus {OPUS_BITRATES[0] // 1000} kb/s": encoded[NOW],
        f"alternative: 24 kHz, Opus {OPUS_BITRATES[0] // 1000} kb/s": encoded[alt],
    }
    source = "the 48 kHz PCM the encoders took"
    measured = {}
    for kind, clips_pcm in {
        source: [(p, SAMPLE_RATE) for p in pcm48],
        **{kind: [read_audio(d) for d in datas] for kind, datas in kinds.items()},
    }.items():
        measured[kind] = {
            "lufs": [clip_loudness(p, r) for p, r in clips_pcm],
            "peak": [true_peak_dbfs(p) for p, _ in clips_pcm],
            "spectra": [spectrum(p, r) for p, r in clips_pcm],
            "kb": [len(d) / 1024 for d in kinds.get(kind, [])],
        }
    cost = {
        "before: 48 kHz, Vorbis": mean(synth_cpu["48 kHz (now)"])
        + mean(normalise_cpu[SAMPLE_RATE])
        + mean(encode_cpu[BEFORE]),
        f"now: 48 kHz, Opus {OPUS_BITRATES[0] // 1000} kb/s": mean(synth_cpu["48 kHz (now)"])
        + mean(normalise_cpu[SAMPLE_RATE])
        + mean(encode_cpu[NOW]),
        f"alternative: 24 kHz, Opus {OPUS_BITRATES[0] // 1000} kb/s": mean(synth_cpu["24 kHz"])
        + mean(normalise_cpu[24_000])
        + mean(encode_cpu[alt]),
    }
    compare_rows = [
        ["CPU per clip: synth + loudness + encode", "", *(f"{cost[k]:.3f} s" for k in kinds)],
        [
            f"CPU for the {CANDIDATES} clips of a composition",
            "",
            *(f"{CANDIDATES * cost[k]:.2f} s" for k in kinds),
        ],
        [
            "file size, median",
            "",
            *(f"{statistics.median(measured[k]['kb']):.0f} KB" for k in kinds),
        ],
        [
            "integrated loudness, median (min / max)",
            *(
                f"{statistics.median(m['lufs']):.1f} ({min(m['lufs']):.1f} / {max(m['lufs']):.1f})"
                for m in measured.values()
            ),
        ],
        ["true peak, highest", *(f"{max(m['peak']):+.1f} dBTP" for m in measured.values())],
    ]
    for seed_name, first in ((name, i * CANDIDATES) for i, name in enumerate(clips)):
        chosen = slice(first, first + CANDIDATES)
        compare_rows.append(
            [
                f"{seed_name}: spectral centroid, median",
                *(
                    f"{statistics.median(s.centroid_hz for s in m['spectra'][chosen]):.0f} Hz"
                    for m in measured.values()
                ),
            ]
        )
        for b in range(len(BANDS) - 1):
            compare_rows.append(
                [
                    f"{seed_name}: energy {band_label(b)}, dB re total",
                    *(
                        f"{statistics.fmean(s.bands_db[b] for s in m['spectra'][chosen]):.1f}"
                        for m in measured.values()
                    ),
                ]
            )
    before_cpu = CANDIDATES * cost["before: 48 kHz, Vorbis"]
    now_key = f"now: 48 kHz, Opus {OPUS_BITRATES[0] // 1000} kb/s"
    now_cpu = CANDIDATES * cost[now_key]
    markdown = "\n\n".join(
        [
            f"{n} clips: the {CANDIDATES} candidates of a {QUICK_BARS if quick else BARS}-bar "
            f"composition from each of {', '.join(f'`{k}`' for k in clips)} ({per_clip:.0f} s "
            "per clip on average). CPU seconds of the measuring thread (`time.thread_time`), "
            "mean per clip, every lever on the same clips in this run.",
            "FluidSynth (synthesis only):",
            table(["synthesis", "CPU per clip", "vs now"], synth_rows),
            "The loudness step (meter, gains, limiter) on the same clips: "
            f"{mean(normalise_cpu[SAMPLE_RATE]):.3f} s per clip at 48 kHz, "
            f"{mean(normalise_cpu[24_000]):.3f} s at 24 kHz.",
            "Encoders on the same 48 kHz clips (the SNR is a rough waveform measure, "
            "decoded against the PCM encoded; perceptual coders lower it with noise they shape "
            "under the music, so it compares encoders only roughly):",
            table(
                ["encoder", "CPU per clip", "vs before", "kb/s", "SNR, dB (median)"],
                encoder_rows,
            ),
            "The clips as members get them, decoded: before, now, and the 24 kHz alternative "
            "(which halves FluidSynth's cost but cuts everything over 12 kHz), beside the PCM "
            "the 48 kHz ones were encoded from. Energy per octave band is the mean over each "
            "seed's clips:",
            table(["", source, *kinds], compare_rows),
        ]
    )
    return Report(
        markdown,
        [
            Headline(
                f"render + encode the {CANDIDATES} clips of a composition, CPU",
                f"{now_cpu:.2f} s (48 kHz, Opus via libopus)",
                f"before (48 kHz, libsndfile Vorbis): {before_cpu:.2f} s, "
                f"{now_cpu / before_cpu:.2f}x",
            ),
        ],
    )


SECTION = Section(
    "Audio levers: what a clip costs, and how it sounds",
    ".venv/bin/python -m bench.audio_levers",
    run,
)

if __name__ == "__main__":
    main(SECTION)
