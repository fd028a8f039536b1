"""The seed reader child as the engine's planner uses it: same tokens as reading in-process,
refusals with their reason, and a child that hangs or dies costs one seed, not the engine."""

from __future__ import annotations

import array
import fcntl
import os
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.api.errors import BadSeed, EngineError
from engine.api.schema import (
    ReadSeed,
    SeedReadFailed,
    TokenizerWanted,
    decode_seed_reply,
    encode,
)
from engine.api.transport import FrameReader, frame
from engine.generation.seed_tokens import SeedTokens
from engine.serving.seed_reader import SeedReader


def unread_input(pid: int) -> int:
    """Bytes waiting in the standard input pipe of process `pid`."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        count = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, count)
        return count[0]
    finally:
        os.close(fd)


def stop(pid: int) -> None:
    """SIGSTOP `pid` and wait until it is stopped. A busy machine may not run it for a while
    after the signal; a read it is blocked in meanwhile would still take what arrives."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        time.sleep(0.01)


@pytest.fixture
def reader() -> Iterator[SeedReader]:
    seeds = SeedReader(timeout=30.0)
    yield seeds
    seeds.close()


def test_reads_what_the_engine_would_read_itself(reader, base_checkpoint, examples):
    tokenizer = base_checkpoint.tokenizer
    for name in ("motif.mid", "waltz-violin.mid", "band.mid"):
        data = (examples / name).read_bytes()
        assert reader.read(tokenizer, data) == SeedTokens.of(tokenizer, data)


def test_the_reader_quantises_when_asked(reader, base_checkpoint):
    from tests.engine.test_quantise import _played_eighths

    tokenizer = base_checkpoint.tokenizer
    played, _ = _played_eighths()
    quantised = reader.read(tokenizer, played, quantise=True)
    assert quantised == SeedTokens.of(tokenizer, played, quantise=True)
    assert quantised.ids != reader.read(tokenizer, played).ids


def test_a_bad_seed_is_refused_with_its_reason(reader, base_checkpoint):
    with pytest.raises(BadSeed, match="not a MIDI file"):
        reader.read(base_checkpoint.tokenizer, b"RIFF, not a MIDI file")


def test_a_reader_that_hangs_is_replaced_and_only_that_seed_is_refused(base_checkpoint, examples):
    tokenizer, seed = base_checkpoint.tokenizer, (examples / "motif.mid").read_bytes()
    reader = SeedReader(timeout=5.0)  # how long the test waits for a stopped process
    try:
        reader.read(tokenizer, seed)
        stuck = reader.pid
        assert stuck is not None
        os.kill(stuck, signal.SIGSTOP)  # as stuck as a parser in an endless loop
        with pytest.raises(BadSeed, match="takes too long to read"):
            reader.read(tokenizer, seed)
        assert reader.read(tokenizer, seed).ids and reader.pid != stuck
    finally:
        reader.close()


def test_a_reader_that_dies_costs_the_seed_it_was_reading_only(reader, base_checkpoint, examples):
    tokenizer, seed = base_checkpoint.tokenizer, (examples / "motif.mid").read_bytes()
    reader.read(tokenizer, seed)
    dying = reader.pid
    stop(dying)  # the request then stays in its pipe
    outcome: list[BaseException | SeedTokens] = []

    def read() -> None:
        try:
            outcome.append(reader.read(tokenizer, seed))
        except BadSeed as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    deadline = time.monotonic() + 60
    while not unread_input(dying):  # the request is in the stopped child's pipe
        assert time.monotonic() < deadline and thread.is_alive(), outcome
        time.sleep(0.01)
    os.kill(dying, signal.SIGKILL)  # a crash in the middle of reading it
    thread.join(60)
    assert len(outcome) == 1 and isinstance(outcome[0], BadSeed), outcome
    assert "could not be read" in str(outcome[0])
    assert reader.read(tokenizer, seed).ids and reader.pid != dying


def test_a_stop_signal_leaves_the_reader_to_its_draining_engine(reader, base_checkpoint, examples):
    tokenizer, seed = base_checkpoint.tokenizer, (examples / "motif.mid").read_bytes()
    reader.read(tokenizer, seed)
    pid = reader.pid
    os.kill(pid, signal.SIGTERM)  # what systemd sends every process of a service it stops
    assert reader.read(tokenizer, seed).ids and reader.pid == pid


def ask_child(child: subprocess.Popen[bytes], message: bytes) -> bytes:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(frame(message))
    child.stdin.flush()
    frames = FrameReader()
    while (answer := frames.next()) is None:
        frames.feed(os.read(child.stdout.fileno(), 1 << 16))
    return answer


def test_the_child_answers_a_broken_request_and_goes_on(examples):
    child = subprocess.Popen(
        [sys.executable, "-m", "engine.serving.seed_reader"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        broken = decode_seed_reply(ask_child(child, b"\x81\xa4seed\x01"))  # {"seed": 1}
        assert isinstance(broken, SeedReadFailed)
        assert broken.message.startswith("ValidationError: Expected `bytes`, got `int`")
        request = ReadSeed("an unknown tokenizer", (examples / "motif.mid").read_bytes())
        assert isinstance(decode_seed_reply(ask_child(child, encode(request))), TokenizerWanted)
    finally:
        child.kill()
        child.wait()


def test_a_child_s_broken_answer_costs_that_child(tmp_path: Path, base_checkpoint, examples):
    # A stand-in for a child with a bug: it answers every request with bytes that are no
    # message of the schema (a frame of three bytes).
    broken = tmp_path / "broken-child"
    broken.write_text("#!/bin/sh\nprintf '\\000\\000\\000\\003abc'\nexec cat > /dev/null\n")
    broken.chmod(0o755)
    reader = SeedReader(python=str(broken), timeout=30.0)
    try:
        with pytest.raises(EngineError, match="^the engine could not read this seed$"):
            reader.read(base_checkpoint.tokenizer, (examples / "motif.mid").read_bytes())
        assert reader.pid is None  # killed; the next read starts another
    finally:
        reader.close()
