"""Seeds are read and tokenized in a child process of the engine
(`python -m engine.serving.seed_reader`), each into a SeedTokens (engine.generation.seed_tokens).

Tokenizing a seed at the note limit is most of a second of pure Python. In the engine's own
process that second holds the GIL that the decode loop takes back after every torch call, so
one server's big seeds slowed every other server's decoding about fourfold (bench.fairness).
In a child they only take a core, and at a lower priority (SEED_READER_NICENESS). The child
also shields the engine from the seed itself: a file that crashes or hangs the MIDI parser
costs that child (restarted for the next seed), never the engine and its batch.

The child imports no torch (MidiTok works without it), so it starts in about a second and
holds ~100 MB. It speaks engine.api.schema's messages on its stdin/stdout, each in a frame of
its length as on the engine's socket (engine.api.transport.frame), decoded once as they arrive:
    engine -> child  ReadSeed{key (a hash of the tokenizer), seed, max_notes, quantise,
                     [tokenizer JSON]}
    child -> engine  SeedRead{ids, tempo, time_signature, quarters, profile, material,
                     pitched_ids} | SeedRefused{message} | SeedReadFailed{message}
                     | TokenizerWanted (then the engine asks again with the JSON)
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, NoReturn

import msgspec

from engine.api.child_env import child_environment
from engine.api.errors import BadSeed, EngineError
from engine.api.limits import MAX_SEED_NOTES
from engine.api.schema import (
    ReadSeed,
    SeedRead,
    SeedReadFailed,
    SeedRefused,
    SeedReply,
    TokenizerWanted,
    decode_read_seed,
    decode_seed_reply,
    encode,
)
from engine.api.transport import FrameReader, frame
from engine.generation.seed_tokens import SeedTokens

if TYPE_CHECKING:
    from engine.model.tokenizer import MidiTokenizer

log = logging.getLogger(__name__)

SEED_READER_NICENESS = 10  # below decoding and rendering, which members wait on
# Reading the largest seed allowed takes about a second; far beyond that the parser is stuck.
READ_TIMEOUT_SECONDS = 60.0
START_TIMEOUT_SECONDS = 60.0
READ_CHUNK = 1 << 16
UNREADABLE = "the engine could not read this seed"  # the child failed, not the seed


class SeedReader:
    """The engine's side: one child, used by one thread at a time (the planner).

    `read` sends a seed and waits for its tokens. A child that dies or takes longer than
    READ_TIMEOUT_SECONDS is killed and the seed refused; the next read starts a new child.
    """

    def __init__(
        self, *, python: str = sys.executable, timeout: float = READ_TIMEOUT_SECONDS
    ) -> None:
        self._python = python
        self._timeout = timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._frames = FrameReader()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the child now (at the engine's warm-up) rather than on the first seed."""
        if self._process is None or self._process.poll() is not None:
            self._process = subprocess.Popen(
                [self._python, "-m", "engine.serving.seed_reader"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                env=child_environment(),
            )
            self._frames = FrameReader()
            log.info("seed reader pid %d started", self._process.pid)

    def close(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # EOF: the child exits by itself
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def read(
        self,
        tokenizer: MidiTokenizer,
        seed: bytes,
        *,
        max_notes: int = MAX_SEED_NOTES,
        quantise: bool = False,
    ) -> SeedTokens:
        """The seed's tokens under `tokenizer`; BadSeed when the seed is unfit (more than
        `max_notes` too) or the child could not read it."""
        self.start()
        # Tokenizers go by their content: every server's fine-tuned model shares the base
        # model's, so the child keeps one. It is sent only when the child asks for it.
        key = hashlib.sha256(tokenizer.params_json.encode()).hexdigest()
        request = ReadSeed(key, seed, max_notes, quantise)
        reply = self._ask(request)
        if isinstance(reply, TokenizerWanted):
            reply = self._ask(msgspec.structs.replace(request, tokenizer=tokenizer.params_json))
        if isinstance(reply, SeedRead):
            return SeedTokens.from_reply(reply)
        if isinstance(reply, SeedRefused):
            raise BadSeed(reply.message)
        if isinstance(reply, SeedReadFailed):
            log.error("the seed reader failed: %s", reply.message)
        else:  # it asked for the tokenizer it had just been sent
            log.error("the seed reader asked for its tokenizer twice")
        raise EngineError(UNREADABLE)

    def _ask(self, request: ReadSeed) -> SeedReply:
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        message = memoryview(frame(encode(request)))
        try:
            while message:  # a pipe may take a large seed in several writes
                message = message[os.write(process.stdin.fileno(), message) :]
        except OSError:
            self._lost("it stopped before reading the seed")
        deadline = time.monotonic() + self._timeout
        while True:
            if (reply := self._next_reply()) is not None:
                return reply
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([process.stdout], [], [], left)[0]:
                self._lost(
                    f"it read for over {self._timeout:.0f} s",
                    BadSeed("that MIDI file takes too long to read; try exporting it again"),
                )
            data = os.read(process.stdout.fileno(), READ_CHUNK)
            if not data:
                self._lost("it stopped while reading the seed")
            self._frames.feed(data)

    def _next_reply(self) -> SeedReply | None:
        """The child's next whole answer, decoded, or None until more bytes come. An answer
        that is not one costs the child (its stream cannot be trusted on)."""
        try:
            data = self._frames.next()
            return None if data is None else decode_seed_reply(data)
        except (ValueError, msgspec.DecodeError) as exc:  # too long a frame; a broken answer
            self._lost(f"it sent a broken answer ({exc})", EngineError(UNREADABLE))

    def _lost(self, why: str, error: EngineError | None = None) -> NoReturn:
        """Give up on the child (the next read starts another) and refuse the seed."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            code = process.wait()
            log.error("seed reader pid %d lost: %s (exit status %s)", process.pid, why, code)
        raise error or BadSeed("that MIDI file could not be read; try exporting it again")


# The child.
TOKENIZERS_KEPT = 4  # different tokenizers in use at once: one, unless a base model changed


def _serve() -> None:
    # MidiTok imports torch when it can, for its datasets only: without it the child starts
    # in a second instead of four and holds a third of the memory.
    sys.modules["torch"] = None  # type: ignore[assignment]
    # Replies go to the engine on the original stdout; anything a library prints goes to
    # stderr (the engine's log) instead of corrupting them.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    os.nice(SEED_READER_NICENESS)
    # A service manager's stop signals every process of the service: the engine then drains,
    # and the seeds of the jobs it finishes still need reading. It closes our stdin after.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, signal.SIG_IGN)
    tokenizers: OrderedDict[str, MidiTokenizer] = OrderedDict()
    requests = FrameReader()
    while data := os.read(sys.stdin.fileno(), READ_CHUNK):
        requests.feed(data)
        while (message := requests.next()) is not None:
            out.write(frame(encode(_answer(message, tokenizers))))
            out.flush()


def _answer(message: bytes, tokenizers: OrderedDict[str, MidiTokenizer]) -> SeedReply:
    from engine.model.tokenizer import MidiTokenizer

    try:
        request = decode_read_seed(message)
        key = request.key
        if request.tokenizer is not None:
            tokenizers[key] = MidiTokenizer.from_json(request.tokenizer)
            while len(tokenizers) > TOKENIZERS_KEPT:
                tokenizers.popitem(last=False)
        if key not in tokenizers:
            return TokenizerWanted()
        tokenizers.move_to_end(key)
        seed = SeedTokens.of(
            tokenizers[key], request.seed, max_notes=request.max_notes, quantise=request.quantise
        )
    except BadSeed as exc:
        return SeedRefused(str(exc))
    except Exception as exc:  # a bug, a broken request, or a seed the tokenizer chokes on
        return SeedReadFailed(f"{type(exc).__name__}: {exc}"[:500])
    return seed.to_reply()


if __name__ == "__main__":
    _serve()
