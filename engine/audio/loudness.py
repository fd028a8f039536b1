"""Loudness after ITU-R BS.1770-4 / EBU R128, and a normaliser that brings clips to one target.

The meter: each channel is K-weighted (the standard's two biquads at 48 kHz: a high shelf of
about +4 dB above 2 kHz that models the head, and a high-pass at about 38 Hz), its mean square
is taken over 400 ms blocks every 100 ms, and the blocks are gated twice (absolute -70 LUFS,
then relative -10 LU under the loudness of the blocks that passed) before averaging. The
filters are applied through their frequency response on each 100 ms hop (Parseval), which
costs one float32 FFT of the clip (~50 ms per 40 s of stereo) where a per-sample recursion in
Python would cost seconds; tests check it against the recursion itself.

The normaliser gives every section of a clip (the whole clip, or the seed and the continuation
on either side of a seam) the gain that brings it to TARGET_LUFS, then a look-ahead limiter
keeps the peaks under CEILING_DBFS instead of letting loud clips fall short of the target.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

# -16 LUFS: the level of Apple Music and of AES TD1004's advice for music streams (-16 to -20),
# 2 LU under Spotify/YouTube's -14, and about where peak normalisation left the median clip
# (so posts do not get quieter). Continuations of the bundled seeds have peaks 13-20 dB over
# their loudness: at -16 half of them need no limiting and the limiter takes more than 1 dB
# during at most 2% of a clip (5 dB at most, on drum hits); a louder target would squash
# piano and drum transients.
TARGET_LUFS = -16.0
# Peaks (sample and half-sample estimates) stay under -1 dBFS: headroom for lossy encoders.
CEILING_DBFS = -1.0
SILENCE_DBFS = -80.0  # a clip that peaks under this is silence: amplifying it raises noise
SEAM_RAMP_SECONDS = 0.05  # the gain moves from the seed's to the continuation's over this
ATTACK_DB_PER_SECOND = 1000.0  # the limiter's gain falls up to 1 dB per ms before a peak,
HOLD_SECONDS = 0.02  # holds for 20 ms after it (no ripple at bass frequencies),
RELEASE_DB_PER_SECOND = 40.0  # and rises back 6 dB in 150 ms
MAX_PASSES = 6  # gain + limiter rounds: each makes up what the limiter took from loudness
MIN_YIELD = 0.2  # LU of loudness per dB of gain assumed at worst when making up
TOLERANCE_LU = 0.1  # a section this close to the target needs no further round

# Work on a clip this much at a time: temporaries stay a few MB whatever the clip's length.
CHUNK_HOPS, CHUNK_BLOCKS = 16, 2048  # 1.6 s to FFT; 2048 blocks of 32 frames, 1.4 s
BLOCK_SECONDS, HOP_SECONDS = 0.4, 0.1  # gating blocks of 400 ms overlapping by 75%
HOPS_PER_BLOCK = round(BLOCK_SECONDS / HOP_SECONDS)
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
LOUDNESS_OFFSET = -0.691  # makes a 997 Hz sine read its own level (K-weighting adds ~0.69 dB)
# K-weighting as BS.1770-4 tabulates it for 48 kHz: (b0, b1, b2), (1, a1, a2) of each stage.
SHELF = (
    (1.53512485958697, -2.69169618940638, 1.19839281085285),
    (1.0, -1.69065929318241, 0.73248077421585),
)
HIGH_PASS = ((1.0, -2.0, 1.0), (1.0, -1.99004745483398, 0.99007225036621))
STANDARD_RATE = 48_000


def k_weighting_power(frequencies: np.ndarray) -> np.ndarray:
    """|H(f)|^2 of the K-weighting at these frequencies in Hz.

    The standard defines the filters at 48 kHz; other rates use the same curve at the same
    frequencies (above 24 kHz the shelf's top value holds), which is what the standard's
    filters redesigned for that rate approximate.
    """
    f = np.minimum(np.abs(frequencies), STANDARD_RATE / 2)
    z = np.exp(-2j * np.pi * f / STANDARD_RATE)  # z^-1
    power = np.ones(len(f))
    for b, a in (SHELF, HIGH_PASS):
        h = (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)
        power *= np.abs(h) ** 2
    return power


@dataclass(frozen=True)
class HopEnergies:
    """K-weighted sums of squares over each 100 ms hop of a clip, channels summed (G = 1)."""

    weighted: np.ndarray  # (hops,)
    hop: int  # frames per hop

    def loudness(self, scale: np.ndarray | float = 1.0) -> float:
        """Integrated loudness in LUFS of the clip with each hop's power scaled by `scale`."""
        return gated_loudness(self.weighted * scale, self.hop)


def hop_energies(pcm: np.ndarray, sample_rate: int) -> HopEnergies:
    """Measure `pcm` (frames,) or (frames, channels); the frames after the last whole hop
    do not count (as the standard's last block ends within the clip)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive (received {sample_rate})")
    x = np.asarray(pcm, dtype=np.float32)
    x = x[:, None] if x.ndim == 1 else x
    hop = round(HOP_SECONDS * sample_rate)
    hops = len(x) // hop
    # Parseval for a real FFT: the bins between DC and Nyquist stand for two.
    weights = 2 * k_weighting_power(np.fft.rfftfreq(hop, 1 / sample_rate)).astype(np.float32)
    weights[0] /= 2
    if hop % 2 == 0:
        weights[-1] /= 2
    weighted = np.empty(hops)
    for first in range(0, hops, CHUNK_HOPS):
        last = min(hops, first + CHUNK_HOPS)
        # (channels, hops, hop): contiguous per channel, so each FFT reads contiguous memory.
        frames = np.ascontiguousarray(x[first * hop : last * hop].T).reshape(-1, last - first, hop)
        spectrum = np.fft.rfft(frames, axis=-1)  # float32 in, complex64 out
        power = np.square(spectrum.real) + np.square(spectrum.imag)
        weighted[first:last] = (power @ weights).sum(axis=0)
    weighted /= hop
    return HopEnergies(weighted, hop)


def gated_loudness(hop_power: np.ndarray, hop: int) -> float:
    """Integrated loudness from K-weighted sums of squares per hop; -inf when no block passes
    the gates (silence, or a clip shorter than one 400 ms block)."""
    if len(hop_power) < HOPS_PER_BLOCK:
        return float("-inf")
    total = np.convolve(hop_power, np.ones(HOPS_PER_BLOCK), mode="valid")
    blocks = total / (HOPS_PER_BLOCK * hop)  # mean square per 400 ms block, channels summed
    with np.errstate(divide="ignore"):
        levels = LOUDNESS_OFFSET + 10 * np.log10(blocks)
    audible = blocks[levels > ABSOLUTE_GATE_LUFS]
    if not len(audible):
        return float("-inf")
    relative_gate = LOUDNESS_OFFSET + 10 * np.log10(audible.mean()) + RELATIVE_GATE_LU
    kept = blocks[levels > max(ABSOLUTE_GATE_LUFS, relative_gate)]
    return float(LOUDNESS_OFFSET + 10 * np.log10(kept.mean()))


def integrated_loudness(pcm: np.ndarray, sample_rate: int) -> float:
    """BS.1770-4 integrated loudness of (frames,) or (frames, channels) PCM, in LUFS."""
    return hop_energies(pcm, sample_rate).loudness()


def true_peak_dbfs(pcm: np.ndarray, factor: int = 4) -> float:
    """The peak between samples too, as BS.1770-4 Annex 2 measures it (4x oversampled, here
    by FFT interpolation), in dBFS. For checking what the engine made (tests, benches): the
    limiter itself uses a cheaper half-sample estimate."""
    x = np.asarray(pcm, dtype=np.float32)
    x = x[:, None] if x.ndim == 1 else x
    peak = 0.0
    for channel in x.T:  # one at a time: the oversampled channel is 4x the clip
        up = np.fft.irfft(np.fft.rfft(channel), n=len(channel) * factor) * factor
        peak = max(peak, float(np.abs(up).max(initial=0.0)))
    with np.errstate(divide="ignore"):
        return float(20 * np.log10(peak))


def normalise(
    pcm: np.ndarray,
    sample_rate: int,
    *,
    seam_seconds: float | None = None,
    target: float = TARGET_LUFS,
    ceiling: float = CEILING_DBFS,
) -> np.ndarray:
    """Bring `pcm` (frames, channels) to `target` LUFS in place, its peaks under `ceiling` dBFS.

    With seam_seconds the two sides of the seam are measured apart and each gets its own gain,
    joined by a short ramp. A silent side (or one shorter than a 400 ms block) takes the other
    side's gain; a clip that peaks under SILENCE_DBFS is left as it is.
    """
    frames = len(pcm)
    seam = None if seam_seconds is None else round(seam_seconds * sample_rate)
    bounds = [0, frames] if seam is None or not 0 < seam < frames else [0, seam, frames]
    sections = list(itertools.pairwise(bounds))
    hop = round(HOP_SECONDS * sample_rate)
    envelope = _Envelope.of(pcm, _block_frames(hop))
    peak = float(envelope.peak_db.max(initial=-np.inf))
    if peak < SILENCE_DBFS:
        return pcm
    # The gates are levels of a finished mix, but the synth's output is ~30 dB under one (a
    # few quiet notes fall under -70 LUFS): gate the clip as if its peak were at the ceiling.
    lift = 10 ** ((ceiling - peak) / 10)
    meters = [hop_energies(pcm[a:b], sample_rate) for a, b in sections]
    levels = [meter.loudness(lift) - (ceiling - peak) for meter in meters]
    known = [target - level for level in levels if np.isfinite(level)]
    if not known:
        return pcm
    gains = [target - level if np.isfinite(level) else known[0] for level in levels]

    starts = np.arange(len(envelope.peak_db)) * envelope.size  # the frame each block starts at
    half_ramp = SEAM_RAMP_SECONDS * sample_rate / 2
    knots = [x for _, seam in sections[:-1] for x in (seam - half_ramp, seam + half_ramp)]
    last: list[tuple[float, float] | None] = [None] * len(sections)  # (gain, loudness) tried
    for _ in range(MAX_PASSES):
        curve = np.interp(starts, knots, gains) if knots else np.full(len(starts), gains[0])
        need = np.minimum(0.0, ceiling - envelope.peak_db - curve)
        # A frame's gain is interpolated between the gains at the starts of its block and of
        # the next one: both must respect the block's need.
        need[1:] = np.minimum(need[1:], need[:-1])
        total = curve + limiter_db(need, sample_rate / envelope.size)
        if np.array_equal(total, curve):
            break  # nothing to limit: every section is at the target
        # A silent side is at no level: it keeps the other side's gain.
        reached = [
            meter.loudness(envelope.hop_gains(total, a, meter.hop, len(meter.weighted)))
            if np.isfinite(level)
            else target
            for meter, (a, _), level in zip(meters, sections, levels, strict=True)
        ]
        if max(target - level for level in reached) < TOLERANCE_LU:
            break
        # Make up what the limiter took. A dB more gain yields less than a dB more loudness
        # when the limiter takes part of it back: step by the shortfall over the last yield.
        for i, level in enumerate(reached):
            step = max(0.0, target - level)
            if last[i] is not None and gains[i] != last[i][0]:
                gained, tried = gains[i] - last[i][0], level - last[i][1]
                step /= min(1.0, max(MIN_YIELD, tried / gained))
            last[i] = (gains[i], level)
            gains[i] += step
    envelope.apply(pcm, total)
    return pcm


def _block_frames(hop: int) -> int:
    """The largest block of at most 32 frames (0.7 ms at 48 kHz) that divides a hop."""
    return next(size for size in range(min(32, hop), 0, -1) if hop % size == 0)


@dataclass(frozen=True)
class _Envelope:
    """A clip's true-ish peak and power per block of `size` frames: the normaliser's gains
    are computed per block, which costs a 32nd of computing them per frame."""

    size: int
    peak_db: np.ndarray  # (blocks,) dBFS
    power: np.ndarray  # (blocks,) sum of squares, channels summed

    @classmethod
    def of(cls, pcm: np.ndarray, size: int) -> _Envelope:
        blocks = -(-len(pcm) // size)
        peak, power = np.empty(blocks), np.empty(blocks)
        step = size * CHUNK_BLOCKS
        for first in range(0, len(pcm), step):
            last = min(len(pcm), first + step)
            # Two frames either side: the half-way points next to the chunk's edges need them.
            halo = min(2, first)
            x = pcm[first - halo : last + 2]
            frame_peaks = _frame_peaks(x)[halo : halo + last - first]
            starts = np.arange(0, last - first, size)
            into = slice(first // size, first // size + len(starts))
            peak[into] = np.maximum.reduceat(frame_peaks, starts)
            squares = _across_channels(np.add, np.square(x[halo : halo + last - first]))
            power[into] = np.add.reduceat(squares, starts)
        with np.errstate(divide="ignore"):
            return cls(size, 20 * np.log10(peak), power)

    def hop_gains(self, gain_db: np.ndarray, start: int, hop: int, hops: int) -> np.ndarray:
        """How much the gain (dB at each block start) scales the power of each hop of the
        section that starts at frame `start`, weighting the blocks by their power."""
        scaled = np.concatenate([[0.0], np.cumsum(self.power * 10 ** (gain_db / 10))])
        plain = np.concatenate([[0.0], np.cumsum(self.power)])
        edges = np.minimum((start + np.arange(hops + 1) * hop) // self.size, len(self.power))
        return np.diff(scaled[edges]) / np.maximum(np.diff(plain[edges]), 1e-30)

    def apply(self, pcm: np.ndarray, gain_db: np.ndarray) -> None:
        """Multiply pcm in place by the gain, linear between the block starts."""
        gain = (10 ** (gain_db / 20)).astype(np.float32)
        after = np.append(gain[1:], gain[-1])
        ramp = np.arange(self.size, dtype=np.float32) / self.size
        for first in range(0, len(gain), CHUNK_BLOCKS):
            into = slice(first, first + CHUNK_BLOCKS)
            per_frame = (gain[into, None] + (after[into] - gain[into])[:, None] * ramp).ravel()
            frames = pcm[first * self.size : (first + CHUNK_BLOCKS) * self.size]
            frames *= per_frame[: len(frames), None]


def _frame_peaks(x: np.ndarray) -> np.ndarray:
    """Per frame, the largest of |sample| and of the half-way points on either side, over the
    channels. A cubic through four frames estimates the half-way point of the middle two: the
    peak between samples a 4x oversampled true-peak meter would see, roughly."""
    peak = _across_channels(np.maximum, np.abs(x))
    if len(x) >= 4:
        mid = x[1:-2] + x[2:-1]
        mid *= 9
        mid -= x[:-3]
        mid -= x[3:]
        half_way = _across_channels(np.maximum, np.abs(mid)) / 16  # frames n + 1, n + 2
        np.maximum(peak[1:-2], half_way, out=peak[1:-2])
        np.maximum(peak[2:-1], half_way, out=peak[2:-1])
    return peak


def _across_channels(ufunc: np.ufunc, x: np.ndarray) -> np.ndarray:
    """ufunc.reduce over axis 1, column by column: numpy reduces a short axis 1 slowly."""
    out = x[:, 0].copy()
    for channel in range(1, x.shape[1]):
        ufunc(out, x[:, channel], out=out)
    return out


def limiter_db(need_db: np.ndarray, steps_per_second: float) -> np.ndarray:
    """A gain in dB at or under `need_db` (<= 0) at every step, that moves smoothly.

    It falls ahead of a peak at ATTACK_DB_PER_SECOND, holds HOLD_SECONDS after it and rises at
    RELEASE_DB_PER_SECOND. A gain with slopes bounded in dB is a running minimum of lines
    through the needed reductions, so it is two cumulative minima: no per-step loop.
    """
    if not need_db.any():
        return need_db
    n = np.arange(len(need_db), dtype=np.float64)
    attack = ATTACK_DB_PER_SECOND / steps_per_second
    release = RELEASE_DB_PER_SECOND / steps_per_second
    held = _sliding_min(need_db, round(HOLD_SECONDS * steps_per_second))
    ahead = np.minimum.accumulate((need_db + attack * n)[::-1])[::-1] - attack * n
    behind = np.minimum.accumulate(held - release * n) + release * n
    return np.minimum(ahead, behind)


def _sliding_min(x: np.ndarray, width: int) -> np.ndarray:
    """min(x[n - width + 1 .. n]) for every n (van Herk / Gil-Werman, vectorised)."""
    if width <= 1:
        return x
    padded = np.concatenate([np.full(width - 1, np.inf), x])
    blocks = np.concatenate([padded, np.full(-len(padded) % width, np.inf)]).reshape(-1, width)
    prefix = np.minimum.accumulate(blocks, axis=1).ravel()
    suffix = np.minimum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    # The window [i, i + width - 1] of `padded` ends at frame i of x.
    return np.minimum(suffix[: len(x)], prefix[width - 1 : width - 1 + len(x)])
