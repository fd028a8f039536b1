"""The BS.1770 meter against the standard's reference facts, and the normaliser on real renders."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import soundfile as sf

from bench import member_seeds
from engine.audio.loudness import (
    ATTACK_DB_PER_SECOND,
    CEILING_DBFS,
    HIGH_PASS,
    RELEASE_DB_PER_SECOND,
    SHELF,
    TARGET_LUFS,
    integrated_loudness,
    k_weighting_power,
    limiter_db,
    normalise,
    true_peak_dbfs,
)
from engine.core.composer import ComposeRequest

RATE = 48_000
# What the codec may add to a peak: lossy coding rings around transients. The limiter keeps
# -1 dBFS before encoding; decoded Ogg Vorbis went up to -0.51 dBFS on 56 clips of the bundled
# seeds, Ogg Opus at 112 kb/s to -0.6 dBTP on bench/audio_levers.py's 8: the check is that
# nothing reaches full scale.
CODEC_SLACK_DB = 1.0


def tone(
    dbfs: float, seconds: float, *, rate: int = RATE, hz: float = 997.0, channels: int = 2
) -> np.ndarray:
    """A sine whose peak is at `dbfs`, the same on every channel."""
    t = np.arange(round(seconds * rate)) / rate
    wave = 10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t)
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32)


def peak_dbfs(pcm: np.ndarray) -> float:
    return 20 * math.log10(float(np.abs(pcm).max()))


def decode(data: bytes) -> np.ndarray:
    pcm, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == RATE
    return pcm


# --- the meter: facts from ITU-R BS.1770-4 and EBU Tech 3341 ---------------------------------


def test_k_weighting_adds_what_the_offset_takes_away_at_997_hz():
    # The -0.691 in the loudness formula is there to cancel the K-weighting's gain at 997 Hz.
    gain_db = 10 * math.log10(k_weighting_power(np.array([997.0]))[0])
    assert gain_db == pytest.approx(0.691, abs=0.001)


@pytest.mark.parametrize("dbfs", [-20.0, -23.0, -33.0])
def test_a_997_hz_sine_on_both_channels_reads_its_own_level(dbfs):
    # Each channel's mean square is A^2 / 2; two channels sum to A^2, so
    # L = -0.691 + 10 log10(A^2 * K(997 Hz)) = 20 log10(A) exactly (EBU Tech 3341 cases 1, 2).
    assert integrated_loudness(tone(dbfs, 10.0), RATE) == pytest.approx(dbfs, abs=0.05)


def test_one_channel_reads_3_db_under_two():
    # BS.1770: a 0 dBFS 1 kHz sine on one channel alone reads -3.01 LKFS.
    assert integrated_loudness(tone(0.0, 5.0, hz=1000.0, channels=1), RATE) == pytest.approx(
        -3.01, abs=0.01
    )


def test_44_1_khz_reads_like_48_khz():
    assert integrated_loudness(tone(-20.0, 10.0, rate=44_100), 44_100) == pytest.approx(
        -20.0, abs=0.05
    )


def test_low_frequencies_count_less():
    # The RLB high-pass: 40 Hz counts about 5.5 dB less than 1 kHz at the same level.
    low = integrated_loudness(tone(-20.0, 5.0, hz=40.0), RATE)
    assert -27.0 < low < -24.0


@pytest.mark.parametrize(
    "pcm",
    [
        np.zeros((RATE * 5, 2), np.float32),  # digital silence
        tone(-72.0, 5.0),  # under the absolute gate of -70 LUFS
        tone(-20.0, 0.39),
    ],
)  # shorter than one 400 ms block
def test_nothing_to_measure_reads_minus_infinity(pcm):
    assert integrated_loudness(pcm, RATE) == -math.inf


def test_just_over_the_absolute_gate_is_measured():
    assert integrated_loudness(tone(-68.0, 5.0), RATE) == pytest.approx(-68.0, abs=0.05)


def test_silence_around_a_tone_does_not_count():
    pcm = np.concatenate(
        [
            np.zeros((RATE * 10, 2), np.float32),
            tone(-23.0, 10.0),
            np.zeros((RATE * 10, 2), np.float32),
        ]
    )
    # The blocks of pure silence fall under the absolute gate. 97 blocks lie in the tone and
    # 3 at each edge overlap it by 1/4, 1/2, 3/4 (they pass the relative gate): their mean
    # power is (97 + 2 * 1.5) / 103 of the tone's.
    expected = -23.0 + 10 * math.log10(100 / 103)
    assert integrated_loudness(pcm, RATE) == pytest.approx(expected, abs=0.02)


def test_relative_gate_drops_the_quiet_parts():
    # EBU Tech 3341 case 3: -36, -23, -36 dBFS for 10, 60, 10 s reads -23.0 +- 0.1: the -36
    # blocks fall under the relative gate (mean of all blocks - 10 LU, about -34.2).
    pcm = np.concatenate([tone(-36.0, 10.0), tone(-23.0, 60.0), tone(-36.0, 10.0)])
    assert integrated_loudness(pcm, RATE) == pytest.approx(-23.0, abs=0.1)


def test_relative_gate_keeps_parts_within_10_lu():
    # EBU Tech 3341 case 5: -26, -20, -26 dBFS for 20, 20.1, 20 s reads -23.0 +- 0.1: every
    # block passes the gate and the powers average.
    pcm = np.concatenate([tone(-26.0, 20.0), tone(-20.0, 20.1), tone(-26.0, 20.0)])
    assert integrated_loudness(pcm, RATE) == pytest.approx(-23.0, abs=0.1)


def biquad(x: list[float], b: tuple[float, ...], a: tuple[float, ...]) -> list[float]:
    """The standard's filter as its difference equation (direct form I), sample by sample."""
    y, x1, x2, y1, y2 = [], 0.0, 0.0, 0.0, 0.0
    for x0 in x:
        y0 = b[0] * x0 + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        y.append(y0)
        x1, x2, y1, y2 = x0, x1, y0, y1
    return y


def reference_loudness(pcm: np.ndarray) -> float:
    """BS.1770-4 written out: filter each channel with both biquads, 400 ms blocks every
    100 ms, absolute then relative gate."""
    weighted = np.stack(
        [biquad(biquad(pcm[:, c].tolist(), *SHELF), *HIGH_PASS) for c in range(pcm.shape[1])],
        axis=1,
    )
    block, step = round(0.4 * RATE), round(0.1 * RATE)
    starts = range(0, len(pcm) - block + 1, step)
    z = np.array([np.mean(weighted[s : s + block] ** 2, axis=0).sum() for s in starts])
    levels = -0.691 + 10 * np.log10(z)
    audible = z[levels > -70]
    gate = -0.691 + 10 * np.log10(audible.mean()) - 10
    return float(-0.691 + 10 * np.log10(z[(levels > -70) & (levels > gate)].mean()))


def test_meter_agrees_with_the_standards_filters_on_music(renderer, band, waltz):
    # The meter applies the filters through their frequency response per 100 ms hop; on real
    # renders (drums and bass: where the high-pass matters) it reads what they read.
    for score in (band, waltz):
        pcm = renderer.render(score)
        assert integrated_loudness(pcm, RATE) == pytest.approx(reference_loudness(pcm), abs=0.05)


def test_true_peak_sees_the_peak_between_samples():
    # A 12 kHz sine at 48 kHz, 45 degrees off: every sample falls at 0.707 of the crest, so
    # the samples read 3 dB under the true peak (EBU Tech 3341's reason for true-peak meters).
    n = np.arange(RATE)
    wave = 0.5 * np.sin(np.pi / 2 * n + np.pi / 4)
    pcm = np.stack([wave, wave], axis=1).astype(np.float32)
    assert peak_dbfs(pcm) == pytest.approx(20 * math.log10(0.5) - 3.01, abs=0.01)
    assert true_peak_dbfs(pcm) == pytest.approx(20 * math.log10(0.5), abs=0.05)


# --- the normaliser ------------------------------------------------------------------------


@pytest.mark.parametrize("dbfs", [-45.0, -30.0, -10.0])
def test_quiet_and_loud_clips_reach_the_target(dbfs):
    pcm = normalise(tone(dbfs, 5.0), RATE)
    assert integrated_loudness(pcm, RATE) == pytest.approx(TARGET_LUFS, abs=0.1)
    assert peak_dbfs(pcm) <= CEILING_DBFS + 1e-3


def test_clips_under_the_absolute_gate_as_rendered_still_reach_the_target():
    # -75 dBFS reads -inf on the meter (every block is under -70 LUFS), yet it is music:
    # the gates apply to the clip as if its peak were at the ceiling.
    pcm = normalise(tone(-75.0, 5.0), RATE)
    assert integrated_loudness(pcm, RATE) == pytest.approx(TARGET_LUFS, abs=0.1)


def test_a_clip_that_peaks_under_80_dbfs_is_silence():
    pcm = tone(-85.0, 5.0)
    assert np.array_equal(normalise(pcm.copy(), RATE), pcm)


def test_quiet_notes_are_not_taken_for_silence(renderer, build_score):
    # FluidSynth renders a few violin notes at velocity 10 at about -75 LUFS.
    score = build_score([(40, False, [(b, 1, 67) for b in range(0, 16, 4)])])
    for note in score.tracks[0].notes:
        note.velocity = 10
    pcm = renderer.render(score)
    assert integrated_loudness(pcm, RATE) == pytest.approx(TARGET_LUFS, abs=0.2)


def peaky(seconds: float = 8.0) -> np.ndarray:
    """A tone with a loud hit (a fast-decaying 1.5 kHz burst) every half second: its peaks sit
    23 dB over its loudness, so at the target they would reach +6 dBFS."""
    pcm = tone(-24.0, seconds, hz=440.0)
    t = np.arange(RATE // 20) / RATE
    hit = (0.9 * np.exp(-t / 0.01) * np.sin(2 * np.pi * 1500 * t)).astype(np.float32)
    for start in range(RATE // 4, len(pcm) - len(hit), RATE // 2):
        pcm[start : start + len(hit)] += hit[:, None]
    return pcm


def test_peaky_clips_reach_the_target_with_peaks_limited():
    original = peaky()
    pcm = normalise(original.copy(), RATE)
    assert integrated_loudness(pcm, RATE) == pytest.approx(TARGET_LUFS, abs=0.2)
    assert peak_dbfs(pcm) <= CEILING_DBFS + 1e-3
    # Between samples too (true peak, 4x oversampled): the half-sample estimate catches most.
    assert true_peak_dbfs(pcm) <= CEILING_DBFS + 0.5
    # The limiter works around the hits only: the tone before the first one is just louder.
    before = slice(RATE // 10, RATE // 5)
    gain = pcm[before] / original[before]
    assert np.allclose(gain, gain[0, 0], rtol=1e-4) and gain[0, 0] > 1


def test_limiter_stays_under_the_need_and_moves_at_its_rates():
    steps = 10_000  # one step per ms
    need = np.zeros(steps)
    need[3000] = -12.0
    need[6000:6100] = -4.0
    gain = limiter_db(need, steps_per_second=1000.0)
    assert (gain <= need + 1e-9).all()
    slopes = np.diff(gain)
    assert slopes.min() >= -ATTACK_DB_PER_SECOND / 1000 - 1e-9
    assert slopes.max() <= RELEASE_DB_PER_SECOND / 1000 + 1e-9
    assert gain[:2900].max() == 0.0 and gain[-100:].max() == 0.0  # it lets go again


def test_each_side_of_the_seam_reaches_the_target():
    seam = 4.0
    pcm = np.concatenate([tone(-40.0, seam), tone(-12.0, 6.0, hz=660.0)])
    out = normalise(pcm.copy(), RATE, seam_seconds=seam)
    cut = round(seam * RATE)
    margin = RATE // 20  # the ramp: 50 ms around the seam
    assert integrated_loudness(out[: cut - margin], RATE) == pytest.approx(TARGET_LUFS, abs=0.2)
    assert integrated_loudness(out[cut + margin :], RATE) == pytest.approx(TARGET_LUFS, abs=0.2)
    # The gain moves from one side's to the other's over the ramp, not in one step.
    ratio = np.abs(out[cut - margin : cut + margin, 0]) / np.maximum(
        np.abs(pcm[cut - margin : cut + margin, 0]), 1e-6
    )
    db = 20 * np.log10(ratio[np.abs(pcm[cut - margin : cut + margin, 0]) > 1e-3])
    assert np.abs(np.diff(db)).max() < 0.5


def test_silence_is_left_alone_and_a_silent_side_takes_the_others_gain():
    silent = np.zeros((RATE * 2, 2), np.float32)
    assert not normalise(silent.copy(), RATE).any()
    for loud in (tone(-30.0, 4.0), peaky(4.0)):  # the second needs the limiter
        out = normalise(np.concatenate([silent, loud]), RATE, seam_seconds=2.0)
        assert np.isfinite(out).all()
        assert not out[: RATE * 2 - RATE // 20].any()
        assert integrated_loudness(out[RATE * 2 :], RATE) == pytest.approx(TARGET_LUFS, abs=0.2)
        assert peak_dbfs(out) <= CEILING_DBFS + 1e-3


# --- real compositions, rendered by FluidSynth and encoded to OGG --------------------------


def member_seed(examples, name: str) -> bytes:
    """A bundled example by file name, or one of bench/member_seeds.py's by its function."""
    if name.endswith(".mid"):
        return (examples / name).read_bytes()
    return member_seeds.midi_bytes(getattr(member_seeds, name)())


@pytest.mark.parametrize("name", ["band.mid", "sax_melody"])
def test_every_clip_of_a_post_has_one_loudness(composer, examples, name):
    """Peak normalisation left the clips of one post up to 8 LU apart (bench.loudness)."""
    seed = member_seed(examples, name)
    composition = composer.compose(seed, ComposeRequest(bars=8, candidates=4, seed=3))
    clips = [decode(c.audio) for c in composition.candidates]
    levels = [integrated_loudness(pcm, RATE) for pcm in clips]
    assert max(levels) - min(levels) <= 1.0, levels
    assert all(abs(level - TARGET_LUFS) <= 1.0 for level in levels), levels
    assert max(peak_dbfs(pcm) for pcm in clips) <= CEILING_DBFS + CODEC_SLACK_DB


@pytest.mark.parametrize("name", ["waltz-violin.mid", "band_loop"])
def test_include_seed_has_no_jump_at_the_seam(composer, examples, name):
    """Peak-normalised, a seed sat up to 15 LU under or over its continuations."""
    seed = member_seed(examples, name)
    composition = composer.compose(
        seed, ComposeRequest(bars=8, candidates=2, seed=3, include_seed=True)
    )
    assert composition.seed_seconds
    cut = round(composition.seed_seconds * RATE)
    for candidate in composition.candidates:
        pcm = decode(candidate.audio)
        seed_side = integrated_loudness(pcm[:cut], RATE)
        continuation = integrated_loudness(pcm[cut:], RATE)
        assert abs(seed_side - continuation) <= 3.0, (seed_side, continuation)
        assert peak_dbfs(pcm) <= CEILING_DBFS + CODEC_SLACK_DB


def test_seed_previews_reach_the_target(renderer, examples):
    """Whole-file renders (seed previews, piece exports) get the same target as clips."""
    for name in ("motif.mid", "waltz-violin.mid", "band.mid"):
        audio = renderer.render_to_ogg((examples / name).read_bytes())
        pcm = decode(audio.data)
        assert integrated_loudness(pcm, RATE) == pytest.approx(TARGET_LUFS, abs=1.0), name
        assert peak_dbfs(pcm) <= CEILING_DBFS + CODEC_SLACK_DB, name
