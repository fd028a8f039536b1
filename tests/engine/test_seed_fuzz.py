"""Hostile MIDI files against the seed reader and the prompt built from what it accepts.

About three hundred files, generated from fixed random seeds (the same files every run): real
seeds mutated and truncated, and files written byte by byte with what parsers trip on (zero
and SMPTE divisions, absurd delta times, tempos of 0 and of a 16-bit eternity, thousands of
tracks, huge note counts, running-status tricks, giant meta events, chunk lengths that lie).
Each must give a Score or BadSeed (one sentence, no "inf bpm"), then a prompt or BadSeed:
never another exception, never a hang (each file has its own time bound) and never unbounded
memory (the Python heap's peak while reading it, and the prompt's length). A failing file
stays in the session's temporary folder (its path is in the failure) to debug with.
"""

from __future__ import annotations

import random
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.api.errors import BadSeed
from engine.api.seed_midi import MAX_SEED_BYTES, MAX_SEED_NOTES, read_seed
from engine.generation.prompt import MAX_PROMPT_TOKENS, build_prompt

EXAMPLES = Path(__file__).resolve().parents[2] / "engine" / "examples"
SECONDS_PER_FILE = 120  # a hang, not a speed limit: the largest legal seed takes about 1 s
# Reading and tokenizing the largest legal seeds peaks near 25 MB of Python objects.
PEAK_BYTES = 128 * 1024 * 1024


# Writing MIDI byte by byte, lies included.


def vlq(n: int) -> bytes:
    """A variable-length quantity (what MIDI delta times and lengths are written in)."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def chunk(tag: bytes, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return tag + (size & 0xFFFFFFFF).to_bytes(4, "big") + body


def header(tracks: int = 1, division: int = 480, fmt: int = 1, length: int = 6) -> bytes:
    body = fmt.to_bytes(2, "big") + (tracks & 0xFFFF).to_bytes(2, "big")
    return chunk(b"MThd", body + division.to_bytes(2, "big"), length)


def track(events: bytes, *, end: bool = True, length: int | None = None) -> bytes:
    return chunk(b"MTrk", events + (b"\x00\xff\x2f\x00" if end else b""), length)


def midi(*tracks: bytes, division: int = 480, fmt: int = 1, declared: int | None = None) -> bytes:
    count = len(tracks) if declared is None else declared
    return header(count, division, fmt) + b"".join(tracks)


def note(
    pitch: int = 60, *, at: int = 0, length: int = 480, velocity: int = 80, channel: int = 0
) -> bytes:
    return (
        vlq(at)
        + bytes([0x90 | channel, pitch, velocity])
        + vlq(length)
        + bytes([0x80 | channel, pitch, 0])
    )


def tempo(mspq: int, at: int = 0) -> bytes:
    return vlq(at) + b"\xff\x51\x03" + (mspq & 0xFFFFFF).to_bytes(3, "big")


def meta(kind: int, data: bytes, at: int = 0, length: int | None = None) -> bytes:
    return vlq(at) + bytes([0xFF, kind]) + vlq(len(data) if length is None else length) + data


# The hostile files, by family. Each generator takes its own Random.


def mutated(rng: random.Random, real: list[bytes]) -> bytes:
    data = bytearray(rng.choice(real))
    for _ in range(rng.randint(1, 24)):
        at = rng.randrange(len(data))
        action = rng.random()
        if action < 0.5:
            data[at] = rng.randrange(256)
        elif action < 0.7:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif action < 0.85:
            del data[at : at + rng.randint(1, 8)]
        else:  # a byte MIDI gives meaning to: status, meta, end of track, a long VLQ
            data[at:at] = rng.choice(
                [
                    b"\xff",
                    b"\xf0",
                    b"\xff\x2f\x00",
                    b"\xff\xff\xff\x7f",
                    b"\x90",
                    b"\xff\x51\x03\x00\x00\x00",
                ]
            )
    return bytes(data)


def event_mutated(rng: random.Random, real: list[bytes]) -> bytes:
    """A real file whose chunks stay whole while data bytes inside its tracks change: pitches,
    velocities, controller values and delta times a parser then has to make sense of."""
    data = bytearray(rng.choice(real))
    spans, at = [], 14
    while at + 8 <= len(data):
        length = int.from_bytes(data[at + 4 : at + 8], "big")
        spans.append(range(at + 8, min(at + 8 + length, len(data))))
        at += 8 + length
    positions = [i for span in spans for i in span if data[i] < 0x80]
    for i in rng.sample(positions, min(len(positions), rng.randint(1, 40))):
        data[i] = rng.randrange(0x80)
    return bytes(data)


def truncated(rng: random.Random, real: list[bytes]) -> bytes:
    data = rng.choice(real)
    return data[: rng.randrange(1, len(data))]


def divisions(rng: random.Random, real: list[bytes]) -> bytes:
    division = rng.choice(
        [0, 1, 2, 0x7FFF, 0x8000, 0xE728, 0xE250, 0xFFFF, 0xE800, rng.randrange(0x8000, 0x10000)]
    )
    return midi(track(note() + note(64)), division=division)


def delta_times(rng: random.Random, real: list[bytes]) -> bytes:
    events = b""
    for _ in range(rng.randint(1, 40)):
        delta = rng.choice([0x0FFFFFFF, 0x0FFFFFFF, rng.randrange(1 << 28), 0])
        events += note(rng.randrange(128), at=delta, length=rng.choice([0, 1, 0x0FFFFFFF]))
    if rng.random() < 0.3:  # a VLQ longer than the four bytes MIDI allows
        events += b"\xff\xff\xff\xff\xff\xff\x7f\x90\x3c\x40"
    return midi(track(events), division=rng.choice([1, 96, 480, 0x7FFF]))


def tempos(rng: random.Random, real: list[bytes]) -> bytes:
    choice = rng.randrange(5)
    if choice == 0:  # 0 microseconds a beat: an infinite tempo
        events = tempo(0) + note()
    elif choice == 1:
        events = tempo(rng.choice([1, 2, 0xFFFFFF, 0xFFFFFE, 150_000, 2_999_999])) + note()
    elif choice == 2:  # a tempo change at every tick
        events = b"".join(tempo(rng.randrange(1, 1 << 24), at=1) for _ in range(3000)) + note()
    elif choice == 3:  # a tempo event whose length lies
        events = (
            vlq(0)
            + b"\xff\x51"
            + vlq(rng.choice([0, 1, 2, 4, 200]))
            + bytes(rng.randrange(256) for _ in range(3))
            + note()
        )
    else:
        events = tempo(500_000) + note() + tempo(0, at=10) + note(62)
    return midi(track(events))


def many_tracks(rng: random.Random, real: list[bytes]) -> bytes:
    count = rng.choice([1000, 3000, 8000])
    body = track(note(rng.randrange(30, 90)))
    tracks = [body] * count
    declared = rng.choice([count, 65535, 1, 0, count + 7])
    return midi(*tracks, declared=declared)


def many_notes(rng: random.Random, real: list[bytes]) -> bytes:
    count = rng.choice([MAX_SEED_NOTES - 1, MAX_SEED_NOTES + 1, 60_000, 5000])
    spacing = rng.choice([0, 1, 120])
    closed = rng.random() < 0.7  # else note-ons that never end
    pitches = [rng.randrange(21, 109) for _ in range(count)]
    # One running status for every event, so that the count fits in the size limit.
    events = b"\x00\x90" + b"".join(
        (vlq(spacing) if i else b"") + bytes([p, 64]) + (vlq(1) + bytes([p, 0]) if closed else b"")
        for i, p in enumerate(pitches)
    )
    return midi(track(events))


def running_status(rng: random.Random, real: list[bytes]) -> bytes:
    pieces = [
        b"\x00\x3c\x40",  # data without any status before it
        b"\x00\x90\x3c\x40\x10\x3e\x40\x00\xff\x01\x01x\x10\x40\x40",  # running after a meta
        b"\x00\x90\x3c\x40\x00\xf0\x01\xf7\x10\x3c\x00",  # running after a sysex
        b"\x00\x90\x3c\x40\x00\xf8\x10\x3c\x00",  # a real-time byte in the middle
        b"\x00\xc0\x30\x00\x3c\x40",  # program change, then a note on its running status
        b"\x00\x90\x3c\xc0\x40",  # a status byte where data belongs
        b"\x00\xe0\x7f\x7f\x00\x00\x00\x90\x3c\x7f",
    ]
    events = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
    return midi(track(events + note()))


def meta_events(rng: random.Random, real: list[bytes]) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:  # a giant text event, just under the size limit
        events = meta(rng.choice([1, 3, 5, 0x7F]), b"x" * (MAX_SEED_BYTES - 200)) + note()
    elif choice == 1:  # a length that runs past the end of the file
        events = meta(1, b"short", length=0x0FFFFFFF) + note()
    elif choice == 2:  # a sysex that claims the rest of the world
        events = b"\x00\xf0" + vlq(0x0FFFFFFF) + b"\x01\x02" + note()
    elif choice == 3:  # unknown meta types and an end of track in the middle
        events = (
            b"".join(meta(rng.randrange(0x60, 0x7F), bytes(rng.randrange(20))) for _ in range(50))
            + note()
            + b"\x00\xff\x2f\x00"
            + note(70)
        )
    elif choice == 4:  # time signatures no one plays
        events = (
            meta(0x58, bytes([rng.choice([0, 1, 255, 13]), rng.choice([0, 2, 7, 31, 255]), 24, 8]))
            + note()
        )
    else:  # key signatures no one writes
        events = meta(0x59, bytes([rng.randrange(256), rng.randrange(256)])) + note()
    return midi(track(events))


def chunks(rng: random.Random, real: list[bytes]) -> bytes:
    events = note() + note(67, at=240)
    choice = rng.randrange(7)
    if choice == 0:  # a track length that says more than there is
        return midi(track(events, length=rng.choice([0xFFFFFFFF, 10**6, len(events) + 100])))
    if choice == 1:  # one that says less
        return midi(track(events, length=rng.randrange(0, len(events))))
    if choice == 2:  # unknown chunks around the track
        return midi(
            chunk(b"XFIH", bytes(rng.randrange(256) for _ in range(30))),
            track(events),
            chunk(b"MTrk", b""),
        )
    if choice == 3:  # a header whose own length lies
        return header(1, length=rng.choice([0, 2, 100, 0xFFFFFFFF])) + track(events)
    if choice == 4:  # a track with no end-of-track
        return midi(track(events, end=False))
    if choice == 5:  # format 2, and unknown formats
        return midi(track(events), track(note(72)), fmt=rng.choice([2, 3, 0xFFFF]))
    return midi(declared=rng.choice([1, 5]))  # a header and no tracks at all


def garbage(rng: random.Random, real: list[bytes]) -> bytes:
    body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 4000)))
    return header(rng.randint(0, 4), rng.choice([96, 480])) + b"MTrk" + body


def channels(rng: random.Random, real: list[bytes]) -> bytes:
    events = b""
    for _ in range(rng.randint(1, 60)):
        channel = rng.choice([0, 9, 15, rng.randrange(16)])
        kind = rng.randrange(4)
        if kind == 0:
            events += note(
                rng.randrange(128),
                velocity=rng.randrange(128),
                channel=channel,
                length=rng.choice([0, 1, 480]),
            )
        elif kind == 1:
            events += b"\x00" + bytes([0xC0 | channel, rng.randrange(128)])
        elif kind == 2:
            events += b"\x00" + bytes([0xE0 | channel, rng.randrange(128), rng.randrange(128)])
        else:  # note-ons never closed, note-offs never opened
            events += b"\x00" + bytes(
                [rng.choice([0x90, 0x80]) | channel, rng.randrange(128), rng.randrange(1, 128)]
            )
    return midi(track(events), track(note(channel=9)))


def long_time(rng: random.Random, real: list[bytes]) -> bytes:
    division = rng.choice([1, 2, 24, 0x7FFF])
    at = rng.choice([0x0FFFFFFF, 10**6, division * 4 * 4000])
    return midi(
        track(tempo(rng.choice([150_000, 500_000, 2_999_999])) + note() + note(at=at)),
        division=division,
    )


FAMILIES: dict[str, tuple[Callable[[random.Random, list[bytes]], bytes], int]] = {
    "mutated": (mutated, 60),
    "event-mutated": (event_mutated, 50),
    "truncated": (truncated, 30),
    "division": (divisions, 12),
    "delta": (delta_times, 20),
    "tempo": (tempos, 25),
    "tracks": (many_tracks, 8),
    "notes": (many_notes, 6),
    "running-status": (running_status, 25),
    "meta": (meta_events, 30),
    "chunks": (chunks, 25),
    "garbage": (garbage, 25),
    "channels": (channels, 20),
    "long-time": (long_time, 10),
}
CASES = [f"{family}-{i}" for family, (_, count) in FAMILIES.items() for i in range(count)]


def hostile_file(case: str) -> bytes:
    family, _, index = case.rpartition("-")
    make, _ = FAMILIES[family]
    real = [path.read_bytes() for path in sorted(EXAMPLES.glob("*.mid"))]
    return make(random.Random(f"{case}"), real)  # a string seed: the same file every run


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seed-fuzz-failures")


def test_the_families_are_many_and_stable():
    assert len(CASES) >= 300
    assert hostile_file("mutated-3") == hostile_file("mutated-3")
    assert len({hostile_file(case) for case in CASES[:120]}) > 100  # not one file many times


@pytest.mark.timeout(SECONDS_PER_FILE, method="thread")  # a hang in native code too
@pytest.mark.parametrize("case", CASES)
def test_hostile_seed_gives_a_prompt_or_bad_seed(case, base_checkpoint, grammar, failures):
    data = hostile_file(case)
    saved = failures / f"{case}.mid"
    saved.write_bytes(data)  # kept unless the file passes: a crash or a hang leaves it
    tracemalloc.start()
    try:
        outcome = _read_and_prompt(base_checkpoint.tokenizer, grammar, data)
        _, peak = tracemalloc.get_traced_memory()
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__}: {exc} (the file is {saved})")
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"reading took {peak / 1e6:.0f} MB of Python heap ({saved})"
    if isinstance(outcome, BadSeed):
        message = str(outcome)
        assert message and "\n" not in message and len(message) < 300, (message, saved)
        assert not re.search(r"\b(inf|nan)\b", message), (message, saved)
    else:
        assert 0 < len(outcome.ids) <= MAX_PROMPT_TOKENS, (len(outcome.ids), saved)
    saved.unlink()


def _read_and_prompt(tokenizer, grammar, data: bytes):
    """The prompt, or the BadSeed that refused the file (anything else propagates)."""
    try:
        return build_prompt(tokenizer, grammar, read_seed(data))
    except BadSeed as refused:
        return refused
