"""Bot settings, read from the environment and validated once at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from engine.logs import LOG_FORMATS

DEFAULT_DATA_DIR = Path("data")
# Long enough that one member cannot flood a channel, short enough not to feel like a ban.
DEFAULT_COMPOSE_COOLDOWN_SECONDS = 10.0
# A server may have a couple of compositions in flight; more would starve other servers.
DEFAULT_MAX_INFLIGHT_PER_GUILD = 2
# "auto" lets the engine take a GPU when there is one and the CPU otherwise.
DEFAULT_DEVICE = "auto"
# Waiting this long for SQLite's single write lock covers bursts of votes without hanging.
DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 10_000
# 0: fine-tuning starts only when an admin asks (/finetune start).
DEFAULT_FINETUNE_AUTO_AFTER = 0
# Enough to roll back a couple of times without a server's checkpoints filling the disk.
DEFAULT_FINETUNE_KEEP_VERSIONS = 3
# The engine's own bound on a run's steps.
MAX_FINETUNE_STEPS = 100_000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# How long a stopping bot lets compositions in flight finish before it fails them. Below
# Kubernetes' default 30 s (then SIGKILL), leaving 10 s to fail the rest, stop the engine and
# close the gateway; a composition alone takes a few seconds, a busy queue longer.
DEFAULT_SHUTDOWN_GRACE_SECONDS = 20.0
MAX_SHUTDOWN_GRACE_SECONDS = 3600.0
# The health and metrics endpoint listens on the loopback interface unless told otherwise.
DEFAULT_METRICS_HOST = "127.0.0.1"

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# The drivers the bot runs on; plain URLs are mapped to them so operators can paste the
# URL their hosting gives them (often postgres:// or postgresql://).
_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def default_database_url(data_dir: Path) -> str:
    # Absolute, so that the bot and its engine subprocess agree whatever their cwd is.
    return f"sqlite+aiosqlite:///{(data_dir / 'motif.db').resolve()}"


def normalize_database_url(url: str) -> str:
    """Return `url` with the async driver the bot uses; raise ValueError when unusable.

    Errors show the URL without its password, since they end up in logs.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        scheme = url.split("://", 1)[0] if "://" in url else url[:20]
        raise ValueError(
            "DATABASE_URL must look like sqlite+aiosqlite:///path/motif.db or "
            f"postgresql+asyncpg://user:pass@host/db (received a URL starting {scheme!r})"
        ) from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    backend = "postgresql" if backend == "postgres" else backend
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"DATABASE_URL must be a SQLite or PostgreSQL URL (received {shown!r})")
    driver = _ASYNC_DRIVERS[backend]
    if "+" in parsed.drivername and parsed.drivername != driver:
        raise ValueError(f"DATABASE_URL must use the {driver} driver (received {shown!r})")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the bot reads from its environment; invalid values fail at construction."""

    discord_token: str | None = field(default=None, repr=False)
    data_dir: Path = DEFAULT_DATA_DIR
    # Empty means "SQLite in data_dir"; after construction it always holds a usable URL.
    database_url: str = field(default="", repr=False)
    device: str = DEFAULT_DEVICE
    compose_cooldown_seconds: float = DEFAULT_COMPOSE_COOLDOWN_SECONDS
    max_inflight_per_guild: int = DEFAULT_MAX_INFLIGHT_PER_GUILD
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS
    log_level: str = "INFO"
    # Start a server's fine-tune by itself once this many seeds and votes are new since its
    # last run (0: never).
    finetune_auto_after: int = DEFAULT_FINETUNE_AUTO_AFTER
    # How many of a server's newest versions keep their checkpoint (the active one always does).
    finetune_keep_versions: int = DEFAULT_FINETUNE_KEEP_VERSIONS
    # Tuning steps per run; None lets the engine choose.
    finetune_steps: int | None = None
    # "json": one JSON object per log line (bot and engine).
    log_format: str = "text"
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    # The /healthz, /readyz and /metrics endpoint; None: off.
    metrics_port: int | None = None
    metrics_host: str = DEFAULT_METRICS_HOST
    # Discord's REST base (e.g. an API proxy: http://proxy:8080/api/v10); None: Discord's own.
    discord_api_base: str | None = None

    def __post_init__(self) -> None:
        # frozen: normalized values are written with object.__setattr__.
        token = self.discord_token.strip() if self.discord_token else None
        object.__setattr__(self, "discord_token", token or None)
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        url = self.database_url or default_database_url(self.data_dir)
        object.__setattr__(self, "database_url", normalize_database_url(url))
        if not _DEVICE_RE.match(self.device):
            raise ValueError(
                f"MOTIF_DEVICE must be auto, cpu, mps, cuda or cuda:N (received {self.device!r})"
            )
        if not 0 <= self.compose_cooldown_seconds <= 3600:
            raise ValueError(
                "MOTIF_COMPOSE_COOLDOWN_SECONDS must be within 0 and 3600 "
                f"(received {self.compose_cooldown_seconds})"
            )
        if not 1 <= self.max_inflight_per_guild <= 100:
            raise ValueError(
                "MOTIF_MAX_INFLIGHT_PER_GUILD must be within 1 and 100 "
                f"(received {self.max_inflight_per_guild})"
            )
        if not 0 <= self.sqlite_busy_timeout_ms <= 600_000:
            raise ValueError(
                "MOTIF_SQLITE_BUSY_TIMEOUT_MS must be within 0 and 600000 "
                f"(received {self.sqlite_busy_timeout_ms})"
            )
        if not 0 <= self.finetune_auto_after <= 1_000_000:
            raise ValueError(
                "MOTIF_FINETUNE_AUTO_AFTER must be within 0 (off) and 1000000 "
                f"(received {self.finetune_auto_after})"
            )
        if not 1 <= self.finetune_keep_versions <= 1000:
            raise ValueError(
                "MOTIF_FINETUNE_KEEP_VERSIONS must be within 1 and 1000 "
                f"(received {self.finetune_keep_versions})"
            )
        if self.finetune_steps is not None and not 1 <= self.finetune_steps <= MAX_FINETUNE_STEPS:
            raise ValueError(
                f"MOTIF_FINETUNE_STEPS must be within 1 and {MAX_FINETUNE_STEPS} "
                f"(received {self.finetune_steps})"
            )
        level = self.log_level.upper()
        if level not in LOG_LEVELS:
            raise ValueError(
                f"MOTIF_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)} "
                f"(received {self.log_level!r})"
            )
        object.__setattr__(self, "log_level", level)
        if self.log_format not in LOG_FORMATS:
            raise ValueError(
                f"MOTIF_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)} "
                f"(received {self.log_format!r})"
            )
        if not 0 <= self.shutdown_grace_seconds <= MAX_SHUTDOWN_GRACE_SECONDS:
            raise ValueError(
                "MOTIF_SHUTDOWN_GRACE_SECONDS must be within 0 and "
                f"{MAX_SHUTDOWN_GRACE_SECONDS:.0f} (received {self.shutdown_grace_seconds})"
            )
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            raise ValueError(
                f"MOTIF_METRICS_PORT must be within 1 and 65535 (received {self.metrics_port})"
            )
        if self.discord_api_base is not None and not re.match(
            r"^https?://[^/\s]+(/\S*)?$", self.discord_api_base
        ):
            raise ValueError(
                "DISCORD_API_BASE must be an http(s) URL such as http://proxy:8080/api/v10 "
                f"(received {self.discord_api_base!r})"
            )

    @property
    def redacted_database_url(self) -> str:
        """The database URL without its password, for logs and error messages."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: os.environ); unset or empty means default."""
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        kwargs: dict[str, object] = {}
        if (token := get("DISCORD_TOKEN")) is not None:
            kwargs["discord_token"] = token
        if (data_dir := get("MOTIF_DATA_DIR")) is not None:
            kwargs["data_dir"] = Path(data_dir).expanduser()
        if (url := get("DATABASE_URL")) is not None:
            kwargs["database_url"] = url
        if (device := get("MOTIF_DEVICE")) is not None:
            kwargs["device"] = device
        if (level := get("MOTIF_LOG_LEVEL")) is not None:
            kwargs["log_level"] = level
        if (log_format := get("MOTIF_LOG_FORMAT")) is not None:
            kwargs["log_format"] = log_format.lower()
        if (grace := get("MOTIF_SHUTDOWN_GRACE_SECONDS")) is not None:
            kwargs["shutdown_grace_seconds"] = _parse_float("MOTIF_SHUTDOWN_GRACE_SECONDS", grace)
        if (metrics_host := get("MOTIF_METRICS_HOST")) is not None:
            kwargs["metrics_host"] = metrics_host
        if (api_base := get("DISCORD_API_BASE")) is not None:
            kwargs["discord_api_base"] = api_base.rstrip("/")
        if (cooldown := get("MOTIF_COMPOSE_COOLDOWN_SECONDS")) is not None:
            kwargs["compose_cooldown_seconds"] = _parse_float(
                "MOTIF_COMPOSE_COOLDOWN_SECONDS", cooldown
            )
        for name, field_name in _INT_VARIABLES.items():
            if (value := get(name)) is not None:
                kwargs[field_name] = _parse_int(name, value)
        return cls(**kwargs)  # type: ignore[arg-type]


# Integer variables read as they are (their ranges are checked by Settings itself).
_INT_VARIABLES = {
    "MOTIF_MAX_INFLIGHT_PER_GUILD": "max_inflight_per_guild",
    "MOTIF_SQLITE_BUSY_TIMEOUT_MS": "sqlite_busy_timeout_ms",
    "MOTIF_FINETUNE_AUTO_AFTER": "finetune_auto_after",
    "MOTIF_FINETUNE_KEEP_VERSIONS": "finetune_keep_versions",
    "MOTIF_FINETUNE_STEPS": "finetune_steps",
    "MOTIF_METRICS_PORT": "metrics_port",
}


def _parse_int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer (received {value!r})") from None


def _parse_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number (received {value!r})") from None
    if number != number:  # NaN slips through every range check
        raise ValueError(f"{name} must be a number (received {value!r})")
    return number
