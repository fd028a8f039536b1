"""What the bot and the engine process say to each other, as typed structs (light: no torch).

Every request, progress event and result that crosses the engine's boundary is a msgspec
Struct here, encoded as MessagePack by `encode` and decoded and checked once where it arrives:
the engine decodes what a client sends (`decode_to_engine`), the client what the engine sends
back (`decode_from_engine`). A request checks its own options against engine.api.limits in
`__post_init__`, which runs both when the bot builds one and when the engine decodes one, so
one shape, `ComposeRequest`, flows from the bot to the sampler, and an option out of range is
refused with the same sentence wherever it comes from.

    client -> engine  ComposeCommand{id, request}  RenderCommand{id, request}
                      FinetuneCommand{id, request}  CancelCommand{id}  PingCommand{id}
    engine -> client  Ready{pid, device, model}  JobProgress{id, event}  JobDone{id, result}
                      JobFailed{id, kind, message}  Pong{id, stats}

(The message classes are not named Compose, Render, ... because modules are: one name, one
thing; tests/test_layers.py.)

Inside the engine, a planner asks its seed reader child (engine.serving.seed_reader) to read
and tokenize a seed with the same kind of messages, on the child's stdin and stdout:

    engine -> child   ReadSeed{key, seed, max_notes, quantise, tokenizer}
    child -> engine   SeedRead{ids, tempo, ...} | SeedRefused{message}
                      | SeedReadFailed{message} | TokenizerWanted

Each message is a map whose "type" names it; a progress event's "stage" names it; a result's
"type" names the job it answers. A transport (engine.api.transport) carries the encoded bytes
as they are, so any transport (a socket to a local subprocess, a job queue) speaks this.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from msgspec import Struct
from msgspec.structs import force_setattr

from engine.api.errors import BadRequest, BadSeed, EngineError, EngineUnavailable
from engine.api.form import DEFAULT_FORM, plan_form
from engine.api.limits import (
    BARS,
    CANDIDATES,
    DEFAULT_BARS,
    DEFAULT_CANDIDATES,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    FINETUNE_STEPS,
    MAX_SEED_NOTES,
    MIN_AUDIO_BYTES,
    PROGRAM,
    SAMPLING_SEED,
    TEMPERATURE,
    TEMPO_BPM,
    TOP_P,
)

# ---- Requests -----------------------------------------------------------------------------


class ComposeRequest(Struct, frozen=True, forbid_unknown_fields=True):
    """A composition: the bot's request, the engine's job and the composer's options in one.

    BadRequest, naming the option and the value received, when one is out of range.
    """

    seed_midi: bytes | None = None  # the MIDI to continue; None starts from nothing
    bars: int = DEFAULT_BARS
    candidates: int = DEFAULT_CANDIDATES
    temperature: float = DEFAULT_TEMPERATURE
    seed: int | None = None  # sampling seed: same seed, same music
    top_p: float = DEFAULT_TOP_P
    tempo: float | None = None  # bpm; None keeps the seed's
    program: int | None = None  # GM program of the new notes; None: as the model/seed wants
    include_seed: bool = False
    form: str = DEFAULT_FORM  # which bars come back: return, free, AABA, ABAB (engine.api.form)
    follow_key: bool = True  # lean toward the seed's key (passing notes stay possible)
    # Snap a performed seed's notes to sixteenths and triplets before the model reads it.
    quantise: bool = False
    guild_id: int | None = None  # whose turn it is in the engine's fair queue
    max_audio_bytes: int | None = None  # each OGG fits this (the server's upload limit)
    # The guild's model version by the engine's id for it (FinetuneResult.model), never a
    # path: the engine owns the files. None: the base model.
    model: str | None = None

    def __post_init__(self) -> None:
        BARS.check("bars", self.bars, BadRequest)
        CANDIDATES.check("candidates", self.candidates, BadRequest)
        TEMPERATURE.check("temperature", self.temperature, BadRequest)
        TOP_P.check("top_p", self.top_p, BadRequest)
        if self.seed is not None:
            SAMPLING_SEED.check("seed", self.seed, BadRequest)
        if self.tempo is not None:
            TEMPO_BPM.check("tempo", self.tempo, BadRequest)
        if self.program is not None:
            PROGRAM.check("program", self.program, BadRequest)
        _check_audio_bytes(self.max_audio_bytes)
        try:
            plan_form(self.form, bars=self.bars, seed_bars=0)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        # Numbers the sampler divides by are floats, however they were written (1 or 1.0).
        for name in ("temperature", "top_p", "tempo"):
            value = getattr(self, name)
            if isinstance(value, int):
                force_setattr(self, name, float(value))


class RenderRequest(Struct, frozen=True, forbid_unknown_fields=True):
    """A whole MIDI file as audio (seed previews, parts of piece exports)."""

    midi: bytes
    max_audio_bytes: int | None = None
    max_seconds: float | None = None  # None: the engine's most (MOTIF_MAX_RENDER_SECONDS)
    guild_id: int | None = None  # whose turn it is among the engine's whole-file renders
    pianoroll: bool = False  # draw the whole file too

    def __post_init__(self) -> None:
        _check_audio_bytes(self.max_audio_bytes)


class VotedPair(Struct, frozen=True, array_like=True):
    chosen: bytes  # MIDI of the candidate the members voted for
    rejected: bytes  # MIDI of another candidate of the same composition


class FinetuneRequest(Struct, frozen=True, forbid_unknown_fields=True):
    """Tune a server's model on its pieces (seeds and winners) and its members' preferences.

    Model versions are named by the engine's ids ("<guild id>/<name>"): the engine owns the
    files (engine.serving.model_store) and decides which of a server's versions to keep: the
    result names the new one and those it deleted. `start_from` is the server's active version
    (None: the base model), which is always kept.
    """

    guild_id: int
    pieces: list[bytes]
    pairs: list[VotedPair] = []
    start_from: str | None = None
    steps: int | None = None  # tuning steps; None: the engine's default

    def __post_init__(self) -> None:
        if self.steps is not None:
            FINETUNE_STEPS.check("steps", self.steps, BadRequest)


def _check_audio_bytes(value: int | None) -> None:
    if value is not None and value < MIN_AUDIO_BYTES:
        raise BadRequest(f"max_audio_bytes must be at least {MIN_AUDIO_BYTES} (received {value})")


# ---- Results ------------------------------------------------------------------------------

# How `CandidateResult.programs` names a drum kit (GM programs are 0-127).
DRUMS = -1


class CandidateResult(Struct):
    midi: bytes
    audio: bytes  # Ogg Opus (Ogg Vorbis where libopus is missing)
    seconds: float
    notes: int
    tokens: int
    invalid_rate: float  # probability mass the model put on invalid ids, per step
    audio_note: str | None = None  # what was given up to fit max_audio_bytes (engine's words)
    # The same as facts, for the bot to put in members' words: the encoder's quality was
    # lowered, and the clip was shortened from this many seconds (None: it was not).
    audio_quality_lowered: bool = False
    audio_cut_from: float | None = None
    programs: list[int] = []  # GM programs heard; DRUMS for a kit
    bars: int | None = None  # bars written (None: not reported); fewer than asked: cut short


class ComposeResult(Struct, tag="compose"):
    candidates: list[CandidateResult]
    pianoroll: bytes  # PNG of every candidate
    seed_seconds: float | None = None  # where the seed ends, when it is included
    timings: dict[str, float] = {}
    tempo: float | None = None  # the bpm the candidates were written at

    @property
    def invalid_rate(self) -> float:
        return sum(c.invalid_rate for c in self.candidates) / max(1, len(self.candidates))


class RenderResult(Struct, tag="render"):
    """A whole MIDI file as audio, and what was given up on the way."""

    audio: bytes  # OGG
    seconds: float  # how long the audio plays
    full_seconds: float  # how long the whole MIDI plays (with the release tail)
    quality_lowered: bool = False  # to fit max_audio_bytes
    # Where in the music the audio stops, when it stops before the end, and why: "length"
    # (the job's bound on seconds) or "size" (shortened to fit max_audio_bytes).
    cut_at: float | None = None
    cut_for: str | None = None
    pianoroll: bytes | None = None  # PNG of the whole file, when it was asked for


class FinetuneResult(Struct, tag="finetune"):
    """What a run produced. `accepted`: the quality gate let the version serve; otherwise
    `reason` says why not. The version is kept either way (its figures are the record) until
    a later run prunes it."""

    accepted: bool
    reason: str
    model: str  # the new version's id (a child run by hand names its file: --out)
    metrics: dict[str, Any]
    pruned: list[str] = []  # ids of the server's versions this run deleted


AnyResult = ComposeResult | RenderResult | FinetuneResult


class EngineStats(Struct):
    pid: int
    device: str
    active_rows: int  # sequences in the decode batch now
    max_rows: int
    active_jobs: int
    queued_jobs: int
    rendering_jobs: int
    jobs: int  # every job the engine holds, from arrival to reply
    models: list[str]  # loaded model keys, most recently used last
    steps: int  # decode steps since start
    training_jobs: int = 0  # fine-tunes running in the background
    tokens: int = 0  # tokens sampled since start (each step samples one per active row)
    draining: bool = False  # told to stop (SIGTERM): finishing its jobs, refusing new ones


# ---- Progress events, newest wins: a slow callback sees the latest one, not a backlog ------


class Queued(Struct, tag_field="stage", tag="queued"):
    position: int  # 1: the next composition to start


class Decoding(Struct, tag_field="stage", tag="composing"):
    percent: float  # bars written / bars requested, over every candidate


class Rendering(Struct, tag_field="stage", tag="rendering"):
    pass


class EngineRestarting(Struct, tag_field="stage", tag="restarting"):
    """The engine died while this job was in flight; a new one is starting and will take the
    job again from the beginning (the client sends it once more). Made by the client."""


class FinetuneProgress(Struct, tag_field="stage", tag="training"):
    phase: str  # one of TRAINING_PHASES
    percent: float  # of the whole run, phases weighted by their expected time


TRAINING_PHASES = ("preparing", "tuning", "preferences", "gate")

ProgressEvent = Queued | Decoding | Rendering | EngineRestarting | FinetuneProgress

# ---- Messages -----------------------------------------------------------------------------


class ComposeCommand(Struct, tag="compose"):
    id: int
    request: ComposeRequest


class RenderCommand(Struct, tag="render"):
    id: int
    request: RenderRequest


class FinetuneCommand(Struct, tag="finetune"):
    id: int
    request: FinetuneRequest


class CancelCommand(Struct, tag="cancel"):
    id: int


class PingCommand(Struct, tag="ping"):
    id: int


ToEngine = ComposeCommand | RenderCommand | FinetuneCommand | CancelCommand | PingCommand


class Ready(Struct, tag="ready"):
    pid: int
    device: str
    model: str  # the base model's checkpoint (this engine's own file)


class JobProgress(Struct, tag="progress"):
    id: int
    event: ProgressEvent


class JobDone(Struct, tag="result"):
    id: int
    result: AnyResult


class JobFailed(Struct, tag="error"):
    id: int | None  # None: a message that named no job
    kind: str  # the EngineError class: BadSeed, BadRequest, EngineUnavailable, EngineError
    message: str  # for the member who asked

    @classmethod
    def of(cls, job_id: int | None, exc: BaseException) -> JobFailed:
        kind = next((c.__name__ for c in type(exc).__mro__ if c.__name__ in _ERRORS), "EngineError")
        return cls(job_id, kind, str(exc))

    def exception(self) -> EngineError:
        return _ERRORS.get(self.kind, EngineError)(self.message)


class Pong(Struct, tag="pong"):
    id: int
    stats: EngineStats


FromEngine = Ready | JobProgress | JobDone | JobFailed | Pong

# ---- The seed reader child's pipe (engine.serving.seed_reader) -----------------------------


class ReadSeed(Struct, frozen=True, forbid_unknown_fields=True):
    """Read and tokenize `seed` with the tokenizer whose JSON hashes to `key`. The child keeps
    the tokenizers it was sent; the JSON comes (`tokenizer`) only when it asks for it."""

    key: str
    seed: bytes
    max_notes: int = MAX_SEED_NOTES
    quantise: bool = False  # ComposeRequest.quantise
    tokenizer: str | None = None


class SeedRead(Struct, tag="tokens"):
    """A seed read: engine.generation.seed_tokens.SeedTokens, in plain values."""

    ids: list[int]
    tempo: float | None  # the seed's facts (engine.api.seed_midi.SeedFacts)
    time_signature: str | None
    quarters: float
    profile: dict[str, Any] | None = None  # SeedProfile.to_record() (engine.generation)
    material: bytes | None = None
    pitched_ids: list[int] | None = None


class SeedRefused(Struct, tag="bad_seed"):
    message: str  # why the seed is unfit, for the member (BadSeed)


class SeedReadFailed(Struct, tag="error"):
    message: str  # a bug, or a seed the tokenizer choked on: for the engine's log


class TokenizerWanted(Struct, tag="need_tokenizer"):
    """The child lacks the request's tokenizer: ask again with its JSON."""


SeedReply = SeedRead | SeedRefused | SeedReadFailed | TokenizerWanted

# Errors cross the wire by class name; anything else becomes a plain EngineError.
_ERRORS: dict[str, type[EngineError]] = {
    cls.__name__: cls for cls in (BadSeed, BadRequest, EngineUnavailable, EngineError)
}

# ---- Encoding and decoding ----------------------------------------------------------------

_encoder = msgspec.msgpack.Encoder()
_to_engine = msgspec.msgpack.Decoder(ToEngine)
_from_engine = msgspec.msgpack.Decoder(FromEngine)
_read_seed = msgspec.msgpack.Decoder(ReadSeed)
_seed_reply = msgspec.msgpack.Decoder(SeedReply)
_MESSAGE_TYPES = ("compose", "render", "finetune", "cancel", "ping")


def encode(message: ToEngine | FromEngine | ReadSeed | SeedReply) -> bytes:
    return _encoder.encode(message)


class BadMessage(BadRequest):
    """A message the engine cannot take; `job_id` is the job it named, if it named one."""

    def __init__(self, message: str, job_id: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


def decode_to_engine(data: bytes) -> ToEngine:
    """A client's message, typed and checked; BadMessage says what is wrong with it."""
    try:
        return _to_engine.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError, BadRequest) as exc:
        raise _refusal(data, exc) from None


def decode_from_engine(data: bytes) -> FromEngine:
    """The engine's message, typed and checked; msgspec.ValidationError or DecodeError when
    it is broken."""
    return _from_engine.decode(data)


def decode_read_seed(data: bytes) -> ReadSeed:
    """A planner's request, in the seed reader child; msgspec.ValidationError or DecodeError
    when it is broken."""
    return _read_seed.decode(data)


def decode_seed_reply(data: bytes) -> SeedReply:
    """The seed reader child's answer, in the engine; msgspec.ValidationError or DecodeError
    when it is broken."""
    return _seed_reply.decode(data)


def job_id_of(data: bytes) -> int | None:
    """The job a message that could not be decoded names, if any (to fail that job)."""
    try:
        raw = msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        return None
    job_id = raw.get("id") if isinstance(raw, dict) else None
    return job_id if isinstance(job_id, int) and not isinstance(job_id, bool) else None


def _refusal(data: bytes, exc: Exception) -> BadMessage:
    """Why a client's message was refused, in our words: the field, what it must be, and the
    value received (msgspec's own sentences name types, not values)."""
    try:
        raw = msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        return BadMessage("a message must be MessagePack")
    if not isinstance(raw, dict):
        return BadMessage(f"a message must be a map (received {type(raw).__name__})")
    kind, job_id = raw.get("type"), raw.get("id")
    if not isinstance(job_id, int) or isinstance(job_id, bool):
        return BadMessage(f"a {kind!r:.40} message needs an integer id (received {job_id!r:.40})")
    if not isinstance(kind, str) or kind not in _MESSAGE_TYPES:
        return BadMessage(f"unknown message type {kind!r:.40}", job_id)
    if isinstance(exc, BadRequest):  # a request's own check (__post_init__): our words already
        return BadMessage(str(exc), job_id)
    return BadMessage(_describe(str(exc), raw, kind), job_id)


# msgspec's sentences, which name the field's path ("$.request.bars") but not the value.
_AT = r"(?: - at `\$(?P<at>.*)`)?$"
_EXPECTED = re.compile(r"^Expected `(?P<wanted>[^`]+)`, got `(?P<got>[^`]+)`" + _AT)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`" + _AT)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`" + _AT)
_WORDS = {
    "int": "int",
    "float": "a number",
    "bytes": "bytes",
    "bool": "true or false",
    "str": "text",
    "array": "a list",
    "object": "a map",
    "null": "nothing",
}


def _describe(error: str, raw: dict[Any, Any], kind: str) -> str:
    if match := _EXPECTED.match(error):
        path = match["at"] or ""
        name = re.findall(r"\.(\w+)", path)[-1] if "." in path else "the message"
        wanted = " or ".join(_WORDS.get(t, t) for t in match["wanted"].split(" | "))
        value = _at(raw, path)
        if wanted == "a map" and name == "request":
            return f"a {kind} request must be a map (received {type(value).__name__})"
        return f"{name} must be {wanted} (received {value!r:.40})"
    if match := _UNKNOWN.match(error):
        return f"unknown {kind} options: {match['name']}"
    if match := _MISSING.match(error):
        return f"a {kind} {'request' if match['at'] else 'message'} needs {match['name']}"
    return f"a malformed {kind} message ({error:.80})"


def _at(raw: object, path: str) -> object:
    """The value at a msgspec path ("$.request.pairs[0]" without the "$")."""
    for name, index in re.findall(r"\.(\w+)|\[(\d+)\]", path):
        if name and isinstance(raw, dict):
            raw = raw.get(name)
        elif index and isinstance(raw, list) and int(index) < len(raw):
            raw = raw[int(index)]
        else:
            return None
    return raw
