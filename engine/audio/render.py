"""MIDI to stereo PCM with FluidSynth, and PCM to OGG: the one module that touches pyfluidsynth.

The synth is driven offline: events are applied at their sample positions and the audio between
two event times is rendered in one call, so a render costs what the synthesis costs, not its
duration. A `Renderer` holds one synth with the soundfont loaded once; it is NOT thread-safe
(a render mutates the synth's state): use it from one thread at a time, one Renderer per worker.
Two renders of the same MIDI sound the same but are not bit-identical: the phase of FluidSynth's
reverb modulation runs on from one render to the next.
"""

from __future__ import annotations

import ctypes
import functools
import io
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import symusic

from engine.audio import opus
from engine.audio.loudness import normalise
from soundfonts import SoundfontNotFound, find_soundfont

if TYPE_CHECKING:
    import fluidsynth

# Opus encodes at 48 kHz (or 24, 16, 12, 8): rendering at 48 kHz avoids resampling and keeps
# the cymbals' top octave (12-24 kHz) that 24 kHz would cut (bench/render_speed.py compares).
SAMPLE_RATE = 48_000
TAIL_SECONDS = 1.0  # lets releases and reverb ring out after the last note-off
DRUM_CHANNEL = 9  # GM channel 10: FluidSynth makes it (and only it) a percussion channel
# FluidSynth accepts more than 16 channels, so every melodic track gets a channel of its own
# instead of folding tracks (and their programs) together.
CHANNELS = 256
MELODIC_CHANNELS = tuple(c for c in range(CHANNELS) if c != DRUM_CHANNEL)
FLUID_BLOCK = 64  # FluidSynth's FLUID_BUFSIZE: it synthesises this many frames at a time
# Opus through libopus itself (engine/audio/opus.py) by default: 0.16 s per 39 s clip on this
# CPU against 0.34 s for libsndfile's Vorbis and 1.0 s for libsndfile's Opus, and better sound
# per byte than Vorbis. Vorbis (libsndfile) when libopus is missing or the rate is not Opus's.
DEFAULT_CODEC = "opus"
# Opus bit rates, best first: the first is every clip's; the bot's upload limit may need a
# lower one (then `quality_lowered`). 112 kb/s stereo is transparent for most music; below
# 32 kb/s shortening the clip serves listeners better than more artefacts.
OPUS_BITRATES = (112_000, 80_000, 64_000, 48_000, 32_000)
# libopus's complexity (0-10) trades encoding time for quality at one bit rate: 5 costs 0.66x
# of 10 here (bench/render_speed.py measures the levels and their coding noise).
OPUS_COMPLEXITY = 5
# libsndfile maps compression_level onto Vorbis quality. Measured on a 4-track piece: default
# 130, then 93, 77, 62 kb/s.
VORBIS_STEPS = (None, 0.8, 0.9, 1.0)
WRITE_BLOCK_FRAMES = 1 << 16
FADE_SECONDS = 0.05  # fade applied when a clip must be shortened, so it does not end in a click

# Event kinds, in the order they apply at one instant: controllers first, then note-offs before
# note-ons so that a note repeated at the same pitch is not cut by its predecessor's note-off.
_CC, _BEND, _OFF, _ON = 0, 1, 2, 3


class RendererUnavailable(RuntimeError):
    """FluidSynth (the native library) cannot be loaded; the message says what to install."""


@dataclass(frozen=True)
class EncodedAudio:
    data: bytes
    seconds: float
    codec: str  # "opus" or "vorbis"
    note: str | None  # what was given up to fit max_bytes, None when nothing was
    # The same as facts, for callers that word it their own way (the bot, for members).
    quality_lowered: bool = False
    cut_from: float | None = None  # the clip's length before it was shortened to fit


@functools.cache
def _fluidsynth() -> tuple[ModuleType, Callable[..., int]]:
    try:
        import fluidsynth  # raises ImportError when libfluidsynth itself is missing
    except (ImportError, OSError) as exc:
        raise RendererUnavailable(
            f"FluidSynth is not available ({exc}): install it with `apt-get install libfluidsynth3`"
        ) from exc
    # pyfluidsynth only exposes 16-bit output, which saturates before we can normalise;
    # float output keeps the full range and is written straight into our buffer.
    write_float = fluidsynth.cfunc(
        "fluid_synth_write_float", ctypes.c_int,
        ("synth", ctypes.c_void_p, 1), ("len", ctypes.c_int, 1),
        ("lout", ctypes.c_void_p, 1), ("loff", ctypes.c_int, 1), ("lincr", ctypes.c_int, 1),
        ("rout", ctypes.c_void_p, 1), ("roff", ctypes.c_int, 1), ("rincr", ctypes.c_int, 1),
    )  # fmt: skip
    return fluidsynth, write_float


class Renderer:
    """A FluidSynth synth with a General MIDI soundfont loaded once (one synth per sample rate)."""

    def __init__(
        self,
        soundfont: str | Path | None = None,
        *,
        settings: Mapping[str, int | float | str] | None = None,
    ) -> None:
        """`settings`: FluidSynth settings beside ours, e.g. {"synth.reverb.active": 0} (the
        benchmark measures what reverb and chorus cost)."""
        self._fluidsynth, self._write_float = _fluidsynth()
        self._settings = dict(settings or {})
        self.soundfont = Path(soundfont) if soundfont is not None else find_soundfont()
        if not self.soundfont.is_file():
            raise SoundfontNotFound(f"soundfont {self.soundfont} does not exist")
        self._synths: dict[int, fluidsynth.Synth] = {}
        self._synth(SAMPLE_RATE)  # load now, so a bad soundfont fails at startup

    def _synth(self, sample_rate: int) -> fluidsynth.Synth:
        # The rate is fixed when a synth is made; FluidSynth's sample cache lets a second synth
        # share the soundfont's samples with the first.
        if sample_rate not in self._synths:
            synth = self._fluidsynth.Synth(
                samplerate=float(sample_rate), channels=CHANNELS, **self._settings
            )
            if synth.sfload(str(self.soundfont)) < 0:
                synth.delete()
                raise SoundfontNotFound(f"FluidSynth could not load soundfont {self.soundfont}")
            self._synths[sample_rate] = synth
        return self._synths[sample_rate]

    def close(self) -> None:
        """Free the synths (a soundfont such as FluidR3 holds ~150 MB)."""
        for synth in self._synths.values():
            synth.delete()
        self._synths.clear()

    def render(
        self,
        midi: bytes | symusic.Score,
        *,
        sample_rate: int = SAMPLE_RATE,
        tail_seconds: float = TAIL_SECONDS,
        seam_seconds: float | None = None,
    ) -> np.ndarray:
        """Render to float32 stereo PCM of shape (N, 2), N = (end of the MIDI + tail) * rate,
        at the loudness target of engine/audio/loudness.py (each side of `seam_seconds` apart)."""
        pcm = self.synthesise(midi, sample_rate=sample_rate, tail_seconds=tail_seconds)
        return normalise(pcm, sample_rate, seam_seconds=seam_seconds)

    def synthesise(
        self,
        midi: bytes | symusic.Score,
        *,
        sample_rate: int = SAMPLE_RATE,
        tail_seconds: float = TAIL_SECONDS,
    ) -> np.ndarray:
        """FluidSynth's output as it comes, before any loudness step (`render` adds it)."""
        score = _in_seconds(midi)
        synth = self._synth(sample_rate)
        # Nothing may carry over from the last render. system_reset restores programs,
        # controllers and effects but only releases voices (an organ's release would sound
        # into this clip), so silence every channel (-1) after it; the other order does not
        # stop them (measured with FluidSynth 2.3).
        synth.system_reset()
        synth.all_sounds_off(-1)
        events = _schedule(score, synth, sample_rate)

        frames = round((score.end() + tail_seconds) * sample_rate)
        # FluidSynth synthesises in blocks and keeps the unread rest of its last block for the
        # next call: rendering whole blocks leaves none, so the next render starts on time.
        pcm = np.zeros((-(-frames // FLUID_BLOCK) * FLUID_BLOCK, 2), dtype=np.float32)
        buf = pcm.ctypes.data
        done = 0
        # Row ranges of the events that share one instant.
        bounds = np.append(np.flatnonzero(np.diff(events[:, 0], prepend=-1)), len(events))
        for first, last in zip(bounds[:-1], bounds[1:], strict=True):
            at = min(int(events[first, 0]), frames)
            self._write(synth, buf, done, at - done)
            done = at
            for _, kind, channel, a, b in events[first:last].tolist():
                if kind == _ON:
                    synth.noteon(channel, a, b)
                elif kind == _OFF:
                    synth.noteoff(channel, a)
                elif kind == _CC:
                    synth.cc(channel, a, b)
                else:
                    synth.pitch_bend(channel, a)
        self._write(synth, buf, done, len(pcm) - done)
        return pcm[:frames]

    def _write(self, synth: fluidsynth.Synth, buf: int, start: int, count: int) -> None:
        if count > 0:  # interleaved stereo: left at even, right at odd float offsets
            self._write_float(synth.synth, count, buf, 2 * start, 2, buf, 2 * start + 1, 2)

    def render_to_ogg(
        self,
        midi: bytes | symusic.Score,
        *,
        max_bytes: int | None = None,
        codec: str = DEFAULT_CODEC,
    ) -> EncodedAudio:
        """Render at the default rate and encode, fitting into max_bytes when given."""
        return encode_ogg(self.render(midi), SAMPLE_RATE, max_bytes=max_bytes, codec=codec)


def _in_seconds(midi: bytes | symusic.Score) -> symusic.Score:
    if isinstance(midi, bytes | bytearray):
        return symusic.Score.from_midi(bytes(midi), ttype="second")
    return midi.to("second")


def _schedule(score: symusic.Score, synth: fluidsynth.Synth, sample_rate: int) -> np.ndarray:
    """Set each track's program and return its events as rows (sample, kind, channel, a, b),
    sorted by time then kind."""
    rows = []
    melodic = itertools.cycle(MELODIC_CHANNELS)  # wraps only past 255 melodic tracks
    drum_program_set = False
    for track in score.tracks:
        if track.is_drum:
            channel = DRUM_CHANNEL
            if not drum_program_set:  # one kit for all drum tracks: GM has one drum channel
                synth.program_change(channel, track.program)  # bank 128 on a drum channel
                drum_program_set = True
        else:
            channel = next(melodic)
            synth.program_change(channel, track.program)
        rows += _track_rows(track, channel, sample_rate)
    if not rows:
        return np.zeros((0, 5), dtype=np.int64)
    events = np.concatenate(rows)
    return events[np.lexsort((events[:, 1], events[:, 0]))]


def _track_rows(track: symusic.Track, channel: int, sample_rate: int) -> list[np.ndarray]:
    def block(times: np.ndarray, kind: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        samples = np.rint(np.asarray(times, dtype=np.float64) * sample_rate)
        columns = (samples, np.full(len(samples), kind), np.full(len(samples), channel), a, b)
        return np.stack([np.asarray(c, dtype=np.int64) for c in columns], axis=1)

    notes = track.notes.numpy()
    controls = track.controls.numpy()
    bends = track.pitch_bends.numpy()
    start, end = notes["time"], notes["time"] + notes["duration"]
    zero = np.zeros(len(start))
    return [
        block(start, _ON, notes["pitch"], notes["velocity"]),
        block(end, _OFF, notes["pitch"], zero),
        block(controls["time"], _CC, controls["number"], controls["value"]),
        block(bends["time"], _BEND, bends["value"], np.zeros(len(bends["time"]))),
    ]


def encode_ogg(
    pcm: np.ndarray, sample_rate: int, *, max_bytes: int | None = None, codec: str = DEFAULT_CODEC
) -> EncodedAudio:
    """Encode PCM (N, channels) to Ogg Opus, or Ogg Vorbis when asked, when libopus is missing
    or when the rate is not one Opus takes.

    If max_bytes is given, the quality is lowered until the file fits (for Opus the bit rate is
    chosen before encoding, so a clip is encoded once); if even the lowest quality does not
    fit, the clip is shortened (with a short fade-out). `note` says which.
    """
    if codec not in ("vorbis", "opus"):
        raise ValueError(f"codec must be vorbis or opus (received {codec!r})")
    if codec == "opus" and sample_rate in opus.RATES and opus.available():
        return _fit(pcm, sample_rate, max_bytes, "opus", _opus_steps(pcm, sample_rate, max_bytes))
    return _fit(pcm, sample_rate, max_bytes, "vorbis", VORBIS_STEPS)


def _opus_steps(pcm: np.ndarray, sample_rate: int, max_bytes: int | None) -> tuple[int, ...]:
    """The bit rates worth trying: from the best one whose estimated size fits (one encoding
    instead of one per step), the first always tried."""
    seconds = len(pcm) / sample_rate
    fits = [
        i
        for i, rate in enumerate(OPUS_BITRATES)
        if max_bytes is None or opus.estimated_bytes(rate, seconds) <= max_bytes
    ]
    return OPUS_BITRATES[fits[0] if fits else len(OPUS_BITRATES) - 1 :]


def _fit(
    pcm: np.ndarray,
    sample_rate: int,
    max_bytes: int | None,
    codec: str,
    steps: tuple[int | float | None, ...],
) -> EncodedAudio:
    """Encode at each step (best first) until one fits, else shorten at the last one."""
    best = OPUS_BITRATES[0] if codec == "opus" else VORBIS_STEPS[0]
    seconds = len(pcm) / sample_rate
    for level in steps:
        data = _encoded(pcm, sample_rate, codec, level)
        if max_bytes is None or len(data) <= max_bytes:
            lowered = level != best
            note = f"quality lowered to fit {max_bytes} bytes" if lowered else None
            return EncodedAudio(data, seconds, codec, note, quality_lowered=lowered)

    assert max_bytes is not None
    lowest, frames = steps[-1], len(pcm)
    while len(data) > max_bytes:
        # Size grows about linearly with length; aim 10% under to converge in a step or two.
        frames = int(frames * max_bytes / len(data) * 0.9)
        if frames < sample_rate * FADE_SECONDS:
            raise ValueError(f"max_bytes is too small for any audio clip (received {max_bytes})")
        data = _encoded(_fade_out(pcm[:frames], sample_rate), sample_rate, codec, lowest)
    kept = frames / sample_rate
    note = f"quality lowered and cut from {seconds:.1f} s to {kept:.1f} s to fit {max_bytes} bytes"
    return EncodedAudio(data, kept, codec, note, quality_lowered=True, cut_from=seconds)


def _encoded(pcm: np.ndarray, sample_rate: int, codec: str, level: int | float | None) -> bytes:
    if codec == "opus":
        assert isinstance(level, int)
        return opus.encode(pcm, sample_rate, bitrate=level, complexity=OPUS_COMPLEXITY)
    return _encode(pcm, sample_rate, "VORBIS", level)


def _encode(pcm: np.ndarray, sample_rate: int, subtype: str, level: float | None) -> bytes:
    out = io.BytesIO()
    options = {} if level is None else {"compression_level": level}
    # libsndfile 1.2.2's Vorbis encoder dies (SIGSEGV) when one write carries ~2.5 M frames
    # (a 53 s clip at 48 kHz): feed it in blocks.
    with sf.SoundFile(
        out, "w", sample_rate, pcm.shape[1], format="OGG", subtype=subtype, **options
    ) as f:
        for start in range(0, len(pcm), WRITE_BLOCK_FRAMES):
            f.write(pcm[start : start + WRITE_BLOCK_FRAMES])
    return out.getvalue()


def _fade_out(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    faded = pcm.copy()
    n = min(len(faded), int(FADE_SECONDS * sample_rate))
    faded[len(faded) - n :] *= np.linspace(1.0, 0.0, n, dtype=np.float32)[:, None]
    return faded
