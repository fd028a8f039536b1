"""The engine's settings: every MOTIF_* variable it reads, parsed and checked once at start.

    settings = EngineSettings.from_env()   # ValueError naming the variable, value and range

`python -m engine ...` builds them before anything else and stops with one line when one is
wrong; the bot builds them too (bot.config.Settings.engine), so `python -m bot` refuses a bad
engine variable before it starts the engine, and hands the engine the values it checked
(`to_env`). Light on purpose: no torch, so the bot may import it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.api.limits import (
    CLIP_SECONDS,
    COMPOSITION_SECONDS,
    COMPOSITION_TOKENS,
    DEFAULT_DEVICE,
    DEFAULT_FINETUNE_KEEP_VERSIONS,
    DEFAULT_LOG_FORMAT,
    DEFAULT_LOG_LEVEL,
    DEFAULT_MAX_CLIP_SECONDS,
    DEFAULT_MAX_COMPOSITION_SECONDS,
    DEFAULT_MAX_COMPOSITION_TOKENS,
    DEFAULT_MAX_RENDER_SECONDS,
    DEFAULT_MAX_ROWS,
    DEFAULT_MODEL_CACHE_MB,
    DEVICES,
    FINETUNE_KEEP_VERSIONS,
    LOG_LEVELS,
    MAX_ROWS,
    MAX_SEED_NOTES,
    MODEL_CACHE_MB,
    RENDER_SECONDS,
    RENDER_THREADS,
    SEED_NOTES,
    TORCH_THREADS,
    Range,
    default_finetune_threads,
    default_render_threads,
)
from engine.api.logs import check_log_format

DEFAULT_DATA_DIR = Path("data")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Variable:
    """One environment variable: the field it sets, its kind, what it may be."""

    name: str
    field: str
    kind: type = str  # int, float, Path or str
    allowed: Range | None = None

    def parse(self, text: str) -> Any:
        """The value of `text`; ValueError naming the variable, the text and what is allowed."""
        if self.kind is Path:
            return Path(text).expanduser()
        if self.kind is str:
            return text
        try:
            value = self.kind(text)
        except ValueError:
            value = None
        if value is None or value != value:  # NaN slips through every range check
            noun = "an integer" if self.kind is int else "a number"
            allowed = f" {self.allowed.text}" if self.allowed is not None else ""
            raise ValueError(f"{self.name} must be {noun}{allowed} (received {text!r})")
        return value


def read_env(env: Mapping[str, str], variables: tuple[Variable, ...]) -> dict[str, Any]:
    """The fields set by `env` (unset or blank means the default), parsed, not yet checked."""
    values: dict[str, Any] = {}
    for variable in variables:
        text = env.get(variable.name, "").strip()
        if text:
            values[variable.field] = variable.parse(text)
    return values


def check_ranges(settings: object, variables: tuple[Variable, ...]) -> None:
    """ValueError for the first field outside its variable's range (None means unset)."""
    for variable in variables:
        value = getattr(settings, variable.field)
        if variable.allowed is not None and value is not None:
            variable.allowed.check(variable.name, value)


@dataclass(frozen=True)
class WorkLimits:
    """How much work one request may cost: a composition (checked when its plan is made,
    before any decoding) or a render job (the audio it makes of a whole MIDI file)."""

    max_clip_seconds: float = DEFAULT_MAX_CLIP_SECONDS
    max_composition_seconds: float = DEFAULT_MAX_COMPOSITION_SECONDS
    max_composition_tokens: int = DEFAULT_MAX_COMPOSITION_TOKENS
    max_seed_notes: int = MAX_SEED_NOTES
    max_render_seconds: float = DEFAULT_MAX_RENDER_SECONDS

    def __post_init__(self) -> None:
        check_ranges(self, WORK_VARIABLES)


WORK_VARIABLES = (
    Variable("MOTIF_MAX_CLIP_SECONDS", "max_clip_seconds", float, CLIP_SECONDS),
    Variable(
        "MOTIF_MAX_COMPOSITION_SECONDS", "max_composition_seconds", float, COMPOSITION_SECONDS
    ),
    Variable("MOTIF_MAX_COMPOSITION_TOKENS", "max_composition_tokens", int, COMPOSITION_TOKENS),
    Variable("MOTIF_MAX_SEED_NOTES", "max_seed_notes", int, SEED_NOTES),
    Variable("MOTIF_MAX_RENDER_SECONDS", "max_render_seconds", float, RENDER_SECONDS),
)


@dataclass(frozen=True)
class EngineSettings:
    """Everything the engine process reads from its environment; checked at construction."""

    data_dir: Path = DEFAULT_DATA_DIR  # corpus, per-server models
    checkpoint: Path | None = None  # the base model; None: the shipped one
    soundfont: Path | None = None  # None: soundfonts.find_soundfont's search order
    device: str = DEFAULT_DEVICE
    max_rows: int | None = None  # None: DEFAULT_MAX_ROWS for the device
    render_threads: int = field(default_factory=default_render_threads)
    model_cache_mb: int = DEFAULT_MODEL_CACHE_MB
    threads: int | None = None  # torch's; None: one to decode, every core for batch work
    finetune_threads: int = field(default_factory=default_finetune_threads)
    # Newest accepted versions per server kept after a fine-tune (engine.serving.model_store).
    finetune_keep_versions: int = DEFAULT_FINETUNE_KEEP_VERSIONS
    log_level: str = DEFAULT_LOG_LEVEL
    log_format: str = DEFAULT_LOG_FORMAT  # "text" or "json" (engine.api.logs)
    work: WorkLimits = field(default_factory=WorkLimits)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if not _DEVICE_RE.match(self.device):
            raise ValueError(f"MOTIF_DEVICE must be {DEVICES} (received {self.device!r})")
        level = self.log_level.upper()
        if level not in LOG_LEVELS:
            raise ValueError(
                f"MOTIF_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} "
                f"(received {self.log_level!r})"
            )
        object.__setattr__(self, "log_level", level)
        object.__setattr__(self, "log_format", check_log_format(self.log_format))
        for name, path in (
            ("MOTIF_CHECKPOINT", self.checkpoint),
            ("MOTIF_SOUNDFONT", self.soundfont),
        ):
            # A typo must not silently fall back to another model or another sound.
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name} must be an existing file (received {str(path)!r})")
        check_ranges(self, ENGINE_VARIABLES)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EngineSettings:
        """Settings from `env` (default: os.environ); ValueError for a bad variable."""
        env = os.environ if env is None else env
        work = WorkLimits(**read_env(env, WORK_VARIABLES))
        return cls(**read_env(env, ENGINE_VARIABLES), work=work)

    def to_env(self) -> dict[str, str]:
        """The variables that recreate these settings in another process (an engine the bot
        starts); paths absolute, since that process may run elsewhere."""
        out: dict[str, str] = {}
        for variables, owner in ((ENGINE_VARIABLES, self), (WORK_VARIABLES, self.work)):
            for variable in variables:
                value = getattr(owner, variable.field)
                if value is None:
                    continue
                out[variable.name] = str(value.resolve() if isinstance(value, Path) else value)
        return out

    def max_rows_for(self, device_type: str) -> int:
        return self.max_rows or DEFAULT_MAX_ROWS.get(device_type, DEFAULT_MAX_ROWS["cpu"])

    @property
    def model_cache_bytes(self) -> int:
        return self.model_cache_mb * 1024 * 1024


ENGINE_VARIABLES = (
    Variable("MOTIF_DATA_DIR", "data_dir", Path),
    Variable("MOTIF_CHECKPOINT", "checkpoint", Path),
    Variable("MOTIF_SOUNDFONT", "soundfont", Path),
    Variable("MOTIF_DEVICE", "device", str),
    Variable("MOTIF_MAX_ROWS", "max_rows", int, MAX_ROWS),
    Variable("MOTIF_RENDER_THREADS", "render_threads", int, RENDER_THREADS),
    Variable("MOTIF_MODEL_CACHE_MB", "model_cache_mb", int, MODEL_CACHE_MB),
    Variable("MOTIF_THREADS", "threads", int, TORCH_THREADS),
    Variable("MOTIF_FINETUNE_THREADS", "finetune_threads", int, TORCH_THREADS),
    Variable("MOTIF_FINETUNE_KEEP_VERSIONS", "finetune_keep_versions", int, FINETUNE_KEEP_VERSIONS),
    Variable("MOTIF_LOG_LEVEL", "log_level", str),
    Variable("MOTIF_LOG_FORMAT", "log_format", str),
)
