"""PCM to Ogg Opus with libopus itself (through ctypes) and an Ogg writer of our own.

libsndfile also writes Ogg Opus, but on this CPU it took 1.0 s for a 39 s stereo clip where
libopus called directly takes 0.24 s at the same settings (complexity 10) and 0.16 s at
complexity 5 (bench/render_speed.py measures both). libopus comes with libsndfile (and so with
FluidSynth) on Debian and Ubuntu; when it cannot be loaded, `available()` says so and the
renderer falls back to libsndfile's Vorbis.

The stream follows RFC 7845: an OpusHead page, an OpusTags page, then audio pages whose
granule positions count 48 kHz samples, the encoder's look-ahead declared as pre-skip and the
last page's granule trimming the padding of the last frame. ctypes releases the GIL during
each libopus call, so clips encode in parallel on threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import struct
import zlib

import numpy as np

RATES = frozenset({8_000, 12_000, 16_000, 24_000, 48_000})  # what libopus takes as input
GRANULE_RATE = 48_000  # Ogg Opus counts samples at 48 kHz whatever the input rate
FRAME_SECONDS = 0.02  # 20 ms frames: libopus's default, the best quality per byte for music
MAX_PACKET_BYTES = 4_000  # libopus's recommended output buffer for one frame
APPLICATION_AUDIO = 2049  # OPUS_APPLICATION_AUDIO
# opus_encoder_ctl requests (opus_defines.h).
SET_BITRATE, SET_COMPLEXITY, SET_VBR_CONSTRAINT, SET_SIGNAL = 4002, 4010, 4020, 4024
GET_LOOKAHEAD = 4027
SIGNAL_MUSIC = 3002
MAX_LACING = 255  # lacing values (segments) per Ogg page
PACKETS_PER_PAGE = 50  # about a second of audio per page: seeking stays fine, overhead ~1%
SERIAL = 0x4D6F7466  # "Motf": one logical stream per file, so any fixed serial will do
VENDOR = b"motif libopus"
# Beyond bitrate x duration: page headers and lacing (~130-200 bytes per second measured at
# 32-112 kb/s), the two header pages, and what constrained VBR lets a frame overshoot.
PAGE_BYTES_PER_SECOND, HEADER_BYTES = 250, 1024


class OpusUnavailable(RuntimeError):
    """libopus cannot be loaded."""


@functools.cache
def _libopus() -> ctypes.CDLL:
    name = ctypes.util.find_library("opus") or "libopus.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise OpusUnavailable(f"libopus is not available ({exc}): install libopus0") from exc
    lib.opus_encoder_create.restype = ctypes.c_void_p
    lib.opus_encoder_create.argtypes = [
        ctypes.c_int32,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
    lib.opus_encode_float.restype = ctypes.c_int32
    lib.opus_encode_float.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int32,
    ]
    # opus_encoder_ctl is variadic: its arguments are converted per call (c_int or a pointer).
    lib.opus_encoder_ctl.restype = ctypes.c_int
    return lib


def available() -> bool:
    try:
        _libopus()
    except OpusUnavailable:
        return False
    return True


def estimated_bytes(bitrate: int, seconds: float) -> int:
    """An upper estimate of `encode`'s size for a clip of this length (measured on clips)."""
    return round(seconds * (bitrate / 8 + PAGE_BYTES_PER_SECOND)) + HEADER_BYTES


def encode(pcm: np.ndarray, sample_rate: int, *, bitrate: int, complexity: int) -> bytes:
    """Encode float PCM (frames, channels), 1 or 2 channels at one of RATES, to Ogg Opus at
    about `bitrate` bits/s (constrained VBR: the size stays close to bitrate x duration)."""
    if sample_rate not in RATES:
        raise ValueError(f"Opus takes {sorted(RATES)} Hz (received {sample_rate})")
    channels = pcm.shape[1]
    if channels not in (1, 2):
        raise ValueError(f"Opus here takes 1 or 2 channels (received {channels})")
    lib = _libopus()
    error = ctypes.c_int()
    encoder = lib.opus_encoder_create(sample_rate, channels, APPLICATION_AUDIO, error)
    if not encoder or error.value != 0:
        raise RuntimeError(f"opus_encoder_create failed (error {error.value})")
    try:
        handle = ctypes.c_void_p(encoder)
        for request, value in (
            (SET_BITRATE, bitrate),
            (SET_COMPLEXITY, complexity),
            (SET_VBR_CONSTRAINT, 1),
            (SET_SIGNAL, SIGNAL_MUSIC),
        ):
            if lib.opus_encoder_ctl(handle, request, ctypes.c_int(value)) != 0:
                raise ValueError(f"libopus refused setting {request} to {value}")
        lookahead = ctypes.c_int32()
        lib.opus_encoder_ctl(handle, GET_LOOKAHEAD, ctypes.byref(lookahead))
        packets = _packets(lib, handle, pcm, sample_rate, lookahead.value)
    finally:
        lib.opus_encoder_destroy(encoder)
    scale = GRANULE_RATE // sample_rate
    pre_skip = lookahead.value * scale
    return _ogg(
        packets,
        channels=channels,
        sample_rate=sample_rate,
        pre_skip=pre_skip,
        frame_granules=round(FRAME_SECONDS * GRANULE_RATE),
        end_granule=pre_skip + len(pcm) * scale,
    )


def _packets(
    lib: ctypes.CDLL, handle: ctypes.c_void_p, pcm: np.ndarray, rate: int, lookahead: int
) -> list[bytes]:
    frame = round(FRAME_SECONDS * rate)
    # The encoder holds `lookahead` samples back: feed that much silence after the clip so its
    # end comes out, then pad to whole frames.
    total = len(pcm) + lookahead
    frames = -(-total // frame)
    x = np.zeros((frames * frame, pcm.shape[1]), dtype=np.float32)
    x[: len(pcm)] = pcm
    out = ctypes.create_string_buffer(MAX_PACKET_BYTES)
    step = frame * pcm.shape[1] * x.itemsize
    base = x.ctypes.data
    packets = []
    for i in range(frames):
        size = lib.opus_encode_float(handle, base + i * step, frame, out, MAX_PACKET_BYTES)
        if size < 0:
            raise RuntimeError(f"opus_encode_float failed (error {size})")
        packets.append(out.raw[:size])
    return packets


def _ogg(
    packets: list[bytes],
    *,
    channels: int,
    sample_rate: int,
    pre_skip: int,
    frame_granules: int,
    end_granule: int,
) -> bytes:
    head = struct.pack("<8sBBHIhB", b"OpusHead", 1, channels, pre_skip, sample_rate, 0, 0)
    tags = struct.pack("<8sI", b"OpusTags", len(VENDOR)) + VENDOR + struct.pack("<I", 0)
    pages = [_page([head], granule=0, sequence=0, flags=0x02), _page([tags], 0, 1, 0)]
    first = 0
    while first < len(packets):
        last, lacing = first, 0
        while last < len(packets) and last - first < PACKETS_PER_PAGE:
            need = len(packets[last]) // 255 + 1
            if lacing + need > MAX_LACING:
                break
            lacing += need
            last += 1
        end = last == len(packets)
        granule = end_granule if end else last * frame_granules
        pages.append(_page(packets[first:last], granule, len(pages), 0x04 if end else 0))
        first = last
    return b"".join(pages)


def _page(packets: list[bytes], granule: int, sequence: int, flags: int) -> bytes:
    lacing = bytearray()
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, SERIAL, sequence, 0, len(lacing))
    page = header + bytes(lacing) + b"".join(packets)
    crc = ogg_crc(page)
    return page[:22] + struct.pack("<I", crc) + page[26:]


# Ogg's CRC-32 is the MSB-first CRC of polynomial 0x04C11DB7 with no initial or final XOR; zlib
# computes the bit-reflected one (with both). Reflecting every byte in and the result out turns
# one into the other, and XOR-ing zlib's CRC of as many zero bytes removes its init and final
# XOR (the CRC is affine in its input): the work stays in C, not in a Python loop per byte.
_REFLECTED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def ogg_crc(data: bytes) -> int:
    reflected = zlib.crc32(data.translate(_REFLECTED)) ^ zlib.crc32(bytes(len(data)))
    return int(f"{reflected:032b}"[::-1], 2)
