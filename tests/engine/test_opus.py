"""Ogg Opus through the real libopus, read back with the real libsndfile."""

from __future__ import annotations

import ctypes.util
import io
import struct

import numpy as np
import pytest
import soundfile as sf

from engine.audio import opus
from engine.audio.loudness import integrated_loudness
from engine.audio.render import OPUS_BITRATES, SAMPLE_RATE, encode_ogg


def decode(data: bytes) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(data), dtype="float32", always_2d=True)


def pages(data: bytes) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        assert data[at : at + 4] == b"OggS", at
        segments = data[at + 26]
        size = 27 + segments + sum(data[at + 27 : at + 27 + segments])
        out.append(data[at : at + size])
        at += size
    return out


def test_ogg_crc_is_the_one_libsndfile_writes(renderer, band):
    vorbis = encode_ogg(renderer.render(band), SAMPLE_RATE, codec="vorbis").data
    for page in pages(vorbis):
        written = struct.unpack("<I", page[22:26])[0]
        assert opus.ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) == written


@pytest.mark.parametrize(("rate", "channels"), [(48_000, 2), (24_000, 2), (48_000, 1)])
def test_decodes_to_every_frame_at_its_rate_and_loudness(renderer, band, rate, channels):
    pcm = renderer.render(band, sample_rate=rate)[:, :channels]
    data = opus.encode(pcm, rate, bitrate=OPUS_BITRATES[0], complexity=5)

    decoded, decoded_rate = decode(data)
    assert decoded_rate == rate and decoded.shape == pcm.shape  # pre-skip and end trimmed
    assert integrated_loudness(decoded, rate) == pytest.approx(
        integrated_loudness(pcm, rate), abs=0.5
    )
    # Aligned with the input: the decoded clip is closest to it at no offset.
    errors = [np.square(decoded[lag : lag + rate] - pcm[:rate]).sum() for lag in range(3)]
    assert int(np.argmin(errors)) == 0


def test_pages_are_numbered_and_only_the_last_ends_the_stream(renderer, waltz):
    every = pages(opus.encode(renderer.render(waltz), SAMPLE_RATE, bitrate=64_000, complexity=5))
    assert every[0][5] == 0x02 and every[0][28:36] == b"OpusHead"
    assert every[1][28:36] == b"OpusTags"
    assert [struct.unpack("<I", p[18:22])[0] for p in every] == list(range(len(every)))
    assert [p[5] & 0x04 for p in every] == [0] * (len(every) - 1) + [0x04]
    granules = [struct.unpack("<q", p[6:14])[0] for p in every[2:]]
    assert granules == sorted(granules)


def test_bitrate_sets_the_size(renderer, waltz):
    pcm = renderer.render(waltz)
    seconds = len(pcm) / SAMPLE_RATE
    for bitrate in (OPUS_BITRATES[0], OPUS_BITRATES[-1]):
        size = len(opus.encode(pcm, SAMPLE_RATE, bitrate=bitrate, complexity=5))
        assert bitrate / 8 * seconds < size <= opus.estimated_bytes(bitrate, seconds)


def test_a_rate_opus_cannot_take_is_refused_with_it(renderer, scale):
    with pytest.raises(ValueError, match="received 44100"):
        opus.encode(
            renderer.render(scale, sample_rate=44_100), 44_100, bitrate=64_000, complexity=5
        )


def test_fitting_encodes_once_at_the_rate_that_fits(renderer, waltz, monkeypatch):
    pcm = renderer.render(waltz)
    limit = opus.estimated_bytes(OPUS_BITRATES[2], len(pcm) / SAMPLE_RATE)
    bitrates = []
    real = opus.encode

    def counted(*args, **kwargs):
        bitrates.append(kwargs["bitrate"])
        return real(*args, **kwargs)

    monkeypatch.setattr(opus, "encode", counted)
    fitted = encode_ogg(pcm, SAMPLE_RATE, max_bytes=limit)

    assert bitrates == [OPUS_BITRATES[2]]
    assert len(fitted.data) <= limit and fitted.codec == "opus"
    assert fitted.quality_lowered and fitted.cut_from is None


def test_without_libopus_clips_are_vorbis(renderer, scale, monkeypatch):
    opus._libopus.cache_clear()
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: "libopus-missing.so")
    try:
        assert not opus.available()
        encoded = encode_ogg(renderer.render(scale), SAMPLE_RATE)
    finally:
        opus._libopus.cache_clear()
    assert encoded.codec == "vorbis"
    assert decode(encoded.data)[1] == SAMPLE_RATE
