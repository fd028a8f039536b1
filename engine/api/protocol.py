"""What the bot and the engine process say to each other (light: no torch).

Messages are plain dicts of msgpack types, so any transport (a socket to a local subprocess
today, a Redis job queue later) carries them as they are. Every message has a "type"; job
messages carry the client's job "id".

    client -> engine  compose {id, request}   render {id, midi, max_audio_bytes, max_seconds,
                      guild_id}
                      finetune {id, request}   cancel {id}   ping {id}
    engine -> client  ready {pid, device, model}   progress {id, event}   result {id, result}
                      error {id, kind, message}   pong {id, stats}

A compose result is `ComposeResult.to_wire()`; a render result is `RenderResult.to_wire()`;
a finetune result is `FinetuneResult.to_wire()`.

The dataclasses below are the typed faces of those dicts, with `to_wire` / `from_wire`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from engine.api.errors import BadRequest, BadSeed, EngineError, EngineUnavailable
from engine.api.form import DEFAULT_FORM
from engine.api.limits import (
    DEFAULT_BARS,
    DEFAULT_CANDIDATES,
    DEFAULT_TEMPERATURE,
    DEFAULT_TOP_P,
    FINETUNE_STEPS,
)


@dataclass(frozen=True)
class ComposeRequest:
    seed_midi: bytes | None = None  # the MIDI to continue; None starts from nothing
    bars: int = DEFAULT_BARS
    candidates: int = DEFAULT_CANDIDATES
    temperature: float = DEFAULT_TEMPERATURE
    seed: int | None = None  # sampling seed: same seed, same music
    top_p: float = DEFAULT_TOP_P
    tempo: float | None = None  # bpm; None keeps the seed's
    program: int | None = None  # GM program of the new notes
    include_seed: bool = False
    form: str = DEFAULT_FORM  # which bars come back: return, free, AABA, ABAB (engine.api.form)
    follow_key: bool = True  # lean toward the seed's key
    guild_id: int | None = None  # whose turn it is in the engine's fair queue
    max_audio_bytes: int | None = None  # each OGG fits this (the server's upload limit)
    checkpoint: str | None = None  # the guild's fine-tuned model; None: the base model

    def to_wire(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_wire(cls, data: object) -> ComposeRequest:
        """Check the types of an incoming request (ranges are the composer's job)."""
        if not isinstance(data, dict):
            raise BadRequest(f"a compose request must be a map (received {type(data).__name__})")
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in data if k not in known)
        if unknown:
            raise BadRequest(f"unknown compose options: {', '.join(unknown)}")
        for name, value in data.items():
            _check_type(name, value)
        return cls(**data)


# Allowed wire types per field; bool is excluded from the numbers on purpose (True is an int).
_NUMBER = (int, float)
_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {  # name: (types, may be None)
    "seed_midi": ((bytes,), True),
    "bars": ((int,), False),
    "candidates": ((int,), False),
    "temperature": (_NUMBER, False),
    "seed": ((int,), True),
    "top_p": (_NUMBER, False),
    "tempo": (_NUMBER, True),
    "program": ((int,), True),
    "include_seed": ((bool,), False),
    "form": ((str,), False),
    "follow_key": ((bool,), False),
    "guild_id": ((int,), True),
    "max_audio_bytes": ((int,), True),
    "checkpoint": ((str,), True),
}


def _check_type(name: str, value: object) -> None:
    types, nullable = _TYPES[name]
    if value is None and nullable:
        return
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in types) + (" or nothing" if nullable else "")
        raise BadRequest(f"{name} must be {wanted} (received {value!r:.40})")


@dataclass(frozen=True)
class CandidateResult:
    midi: bytes
    audio: bytes  # OGG (Opus, or Vorbis where libsndfile lacks Opus)
    seconds: float
    notes: int
    tokens: int
    invalid_rate: float  # probability mass the model put on invalid ids, per step
    audio_note: str | None = None  # what was given up to fit max_audio_bytes (engine's words)
    # The same as facts, for the bot to put in members' words: the encoder's quality was
    # lowered, and the clip was shortened from this many seconds (None: it was not).
    audio_quality_lowered: bool = False
    audio_cut_from: float | None = None
    programs: list[int] = field(default_factory=list)  # GM programs heard; DRUMS for a kit
    bars: int | None = None  # bars written (None: not reported); fewer than asked: cut short


# How `CandidateResult.programs` names a drum kit (GM programs are 0-127).
DRUMS = -1


@dataclass(frozen=True)
class ComposeResult:
    candidates: list[CandidateResult]
    pianoroll: bytes  # PNG of every candidate
    seed_seconds: float | None = None  # where the seed ends, when it is included
    timings: dict[str, float] = field(default_factory=dict)
    tempo: float | None = None  # the bpm the candidates were written at

    @property
    def invalid_rate(self) -> float:
        return sum(c.invalid_rate for c in self.candidates) / max(1, len(self.candidates))

    def to_wire(self) -> dict[str, Any]:
        return {"candidates": [{f.name: getattr(c, f.name) for f in fields(c)}
                               for c in self.candidates],
                "pianoroll": self.pianoroll, "seed_seconds": self.seed_seconds,
                "timings": self.timings, "tempo": self.tempo}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ComposeResult:
        return cls(candidates=[CandidateResult(**c) for c in data["candidates"]],
                   pianoroll=data["pianoroll"], seed_seconds=data["seed_seconds"],
                   timings=dict(data["timings"]), tempo=data.get("tempo"))


@dataclass(frozen=True)
class RenderResult:
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

    def to_wire(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> RenderResult:
        return cls(audio=data["audio"], seconds=float(data["seconds"]),
                   full_seconds=float(data["full_seconds"]),
                   quality_lowered=bool(data.get("quality_lowered")), cut_at=data.get("cut_at"),
                   cut_for=data.get("cut_for"), pianoroll=data.get("pianoroll"))


@dataclass(frozen=True)
class VotedPair:
    chosen: bytes  # MIDI of the candidate the members voted for
    rejected: bytes  # MIDI of another candidate of the same composition


@dataclass(frozen=True)
class FinetuneRequest:
    """Tune a server's model on its pieces (seeds and winners) and its members' preferences.

    The engine owns where checkpoints live (under its data dir, per guild); `start_from` is the
    server's active version (None: the base model) and `keep` lists the checkpoints that must
    survive pruning (the versions the bot may still serve or roll back to).
    """

    guild_id: int
    pieces: list[bytes]
    pairs: list[VotedPair] = field(default_factory=list)
    start_from: str | None = None
    keep: list[str] = field(default_factory=list)
    steps: int | None = None  # tuning steps; None: the engine's default

    def to_wire(self) -> dict[str, Any]:
        return {"guild_id": self.guild_id, "pieces": list(self.pieces),
                "pairs": [[p.chosen, p.rejected] for p in self.pairs],
                "start_from": self.start_from, "keep": list(self.keep), "steps": self.steps}

    @classmethod
    def from_wire(cls, data: object) -> FinetuneRequest:
        if not isinstance(data, dict):
            raise BadRequest(f"a finetune request must be a map (received {type(data).__name__})")
        try:
            pairs = [VotedPair(bytes(c), bytes(r)) for c, r in data.get("pairs") or []]
            request = cls(guild_id=data["guild_id"], pieces=list(data["pieces"]), pairs=pairs,
                          start_from=data.get("start_from"), keep=list(data.get("keep") or []),
                          steps=data.get("steps"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"malformed finetune request ({exc!r:.80})") from None
        if not isinstance(request.guild_id, int) or isinstance(request.guild_id, bool):
            raise BadRequest("a finetune request needs an integer guild_id")
        if not all(isinstance(p, bytes) for p in request.pieces):
            raise BadRequest("finetune pieces must be MIDI bytes")
        if not all(isinstance(k, str) for k in request.keep) or not (
                request.start_from is None or isinstance(request.start_from, str)):
            raise BadRequest("finetune checkpoints must be paths")
        if request.steps is not None:
            if not isinstance(request.steps, int):
                raise BadRequest(f"steps must be an integer (received {request.steps!r:.40})")
            FINETUNE_STEPS.check("steps", request.steps, BadRequest)
        return request


@dataclass(frozen=True)
class FinetuneResult:
    """What a run produced. `accepted`: the quality gate let the checkpoint serve; otherwise
    `reason` says why not. The checkpoint is kept either way (its figures are the record)
    until a later run prunes it."""

    accepted: bool
    reason: str
    checkpoint: str
    metrics: dict[str, Any]
    pruned: list[str] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> FinetuneResult:
        return cls(accepted=bool(data["accepted"]), reason=str(data["reason"]),
                   checkpoint=str(data["checkpoint"]), metrics=dict(data["metrics"]),
                   pruned=list(data.get("pruned") or []))


# Progress events, newest wins: a slow callback sees the latest one, not a backlog.
@dataclass(frozen=True)
class Queued:
    position: int  # 1: the next composition to start


@dataclass(frozen=True)
class Decoding:
    percent: float  # bars written / bars requested, over every candidate


@dataclass(frozen=True)
class Rendering:
    pass


@dataclass(frozen=True)
class EngineRestarting:
    """The engine died while this job was in flight; a new one is starting and will take the
    job again from the beginning (the client sends it once more)."""


@dataclass(frozen=True)
class FinetuneProgress:
    phase: str  # one of TRAINING_PHASES
    percent: float  # of the whole run, phases weighted by their expected time


TRAINING_PHASES = ("preparing", "tuning", "preferences", "gate")

ProgressEvent = Queued | Decoding | Rendering | EngineRestarting | FinetuneProgress


def progress_to_wire(event: ProgressEvent) -> dict[str, Any]:
    if isinstance(event, Queued):
        return {"stage": "queued", "position": event.position}
    if isinstance(event, Decoding):
        return {"stage": "composing", "percent": event.percent}
    if isinstance(event, FinetuneProgress):
        return {"stage": "training", "phase": event.phase, "percent": event.percent}
    if isinstance(event, EngineRestarting):
        return {"stage": "restarting"}
    return {"stage": "rendering"}


def progress_from_wire(data: dict[str, Any]) -> ProgressEvent:
    stage = data["stage"]
    if stage == "queued":
        return Queued(int(data["position"]))
    if stage == "composing":
        return Decoding(float(data["percent"]))
    if stage == "rendering":
        return Rendering()
    if stage == "restarting":
        return EngineRestarting()
    if stage == "training":
        return FinetuneProgress(str(data["phase"]), float(data["percent"]))
    raise ValueError(f"unknown progress stage {stage!r}")


@dataclass(frozen=True)
class EngineStats:
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


# Errors cross the wire by class name; anything else becomes a plain EngineError.
_ERRORS: dict[str, type[EngineError]] = {
    cls.__name__: cls for cls in (BadSeed, BadRequest, EngineUnavailable, EngineError)}


def error_to_wire(job_id: int | None, exc: BaseException) -> dict[str, Any]:
    kind = type(exc).__name__ if type(exc).__name__ in _ERRORS else "EngineError"
    return {"type": "error", "id": job_id, "kind": kind, "message": str(exc)}


def error_from_wire(data: dict[str, Any]) -> EngineError:
    return _ERRORS.get(str(data.get("kind")), EngineError)(str(data.get("message", "")))
