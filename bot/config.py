"""Bot settings, read from the environment and validated once at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from engine.api.config import DEFAULT_DATA_DIR, EngineSettings, Variable, check_ranges, read_env
from engine.api.limits import (
    DEFAULT_DEVICE,
    DEFAULT_LOG_FORMAT,
    DEFAULT_LOG_LEVEL,
    FINETUNE_STEPS,
    Range,
)
from engine.api.queue_keys import check_queue_url

# Long enough that one member cannot flood a channel, short enough not to feel like a ban.
DEFAULT_COMPOSE_COOLDOWN_SECONDS = 10.0
COMPOSE_COOLDOWN_SECONDS = Range(0.0, 3600.0)
# A server may have a couple of compositions in flight; more would starve other servers.
DEFAULT_MAX_INFLIGHT_PER_GUILD = 2
MAX_INFLIGHT_PER_GUILD = Range(1, 100)
# Waiting this long for SQLite's single write lock covers bursts of votes without hanging.
DEFAULT_SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_BUSY_TIMEOUT_MS = Range(0, 600_000)
# 0: fine-tuning starts only when an admin asks (/finetune start).
DEFAULT_FINETUNE_AUTO_AFTER = 0
FINETUNE_AUTO_AFTER = Range(0, 1_000_000)
# How long a stopping bot lets compositions in flight finish before it fails them. Below
# Kubernetes' default 30 s (then SIGKILL), leaving 10 s to fail the rest, stop the engine and
# close the gateway; a composition alone takes a few seconds, a busy queue longer.
DEFAULT_SHUTDOWN_GRACE_SECONDS = 20.0
SHUTDOWN_GRACE_SECONDS = Range(0.0, 3600.0)
METRICS_PORT = Range(1, 65535)
# Discord asks for a shard per 1,000-2,500 servers; a large bot (very large bot sharding)
# runs tens of thousands of shards at most.
SHARD_COUNT = Range(1, 65535)
# The health and metrics endpoint listens on the loopback interface unless told otherwise.
DEFAULT_METRICS_HOST = "127.0.0.1"
_API_BASE_RE = re.compile(r"^https?://[^/\s]+(/\S*)?$")

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
    """Everything the bot reads from its environment; invalid values fail at construction.

    `engine` holds the engine's own variables (engine.api.config), checked here too: the bot
    starts the engine, so a bad one must stop the bot at start, not every composition later.
    The data dir, device, log level and log format are shared: the bot's are the engine's.
    """

    discord_token: str | None = field(default=None, repr=False)
    data_dir: Path = DEFAULT_DATA_DIR
    # Empty means "SQLite in data_dir"; after construction it always holds a usable URL.
    database_url: str = field(default="", repr=False)
    device: str = DEFAULT_DEVICE
    compose_cooldown_seconds: float = DEFAULT_COMPOSE_COOLDOWN_SECONDS
    max_inflight_per_guild: int = DEFAULT_MAX_INFLIGHT_PER_GUILD
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS
    log_level: str = DEFAULT_LOG_LEVEL
    # Start a server's fine-tune by itself once this many seeds and votes are new since its
    # last run (0: never).
    finetune_auto_after: int = DEFAULT_FINETUNE_AUTO_AFTER
    # Tuning steps per run; None lets the engine choose.
    finetune_steps: int | None = None
    # "json": one JSON object per log line (bot and engine).
    log_format: str = DEFAULT_LOG_FORMAT
    shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE_SECONDS
    # The /healthz, /readyz and /metrics endpoint; None: off.
    metrics_port: int | None = None
    metrics_host: str = DEFAULT_METRICS_HOST
    # Discord's REST base (e.g. an API proxy: http://proxy:8080/api/v10); None: Discord's own.
    discord_api_base: str | None = None
    # The Redis job queue whose workers run the engine (engine.api.queue_transport); None:
    # the embedded engine subprocess. May hold Redis' password: kept out of repr and logs.
    queue_url: str | None = field(default=None, repr=False)
    # discord.py's AutoShardedBot: the bot's shards in all (None: not sharded), and those this
    # process runs ("0,1" or "0-3"; None: all of them).
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | str | None = None
    engine: EngineSettings = field(default_factory=EngineSettings)

    def __post_init__(self) -> None:
        # frozen: normalized values are written with object.__setattr__.
        token = self.discord_token.strip() if self.discord_token else None
        object.__setattr__(self, "discord_token", token or None)
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        # Checks the device and the log level and format (the engine's variables too).
        engine = replace(
            self.engine,
            data_dir=self.data_dir,
            device=self.device,
            log_level=self.log_level,
            log_format=self.log_format,
        )
        object.__setattr__(self, "engine", engine)
        object.__setattr__(self, "log_level", engine.log_level)
        object.__setattr__(self, "log_format", engine.log_format)
        url = self.database_url or default_database_url(self.data_dir)
        object.__setattr__(self, "database_url", normalize_database_url(url))
        check_ranges(self, BOT_VARIABLES)
        if self.discord_api_base is not None:
            base = self.discord_api_base.rstrip("/")
            if not _API_BASE_RE.match(base):
                raise ValueError(
                    "DISCORD_API_BASE must be an http(s) URL such as http://proxy:8080/api/v10 "
                    f"(received {self.discord_api_base!r})"
                )
            object.__setattr__(self, "discord_api_base", base)
        if self.queue_url is not None:
            object.__setattr__(self, "queue_url", check_queue_url(self.queue_url.strip()))
        object.__setattr__(self, "shard_ids", self._checked_shard_ids())

    def _checked_shard_ids(self) -> tuple[int, ...] | None:
        """The shard ids as a sorted tuple; ValueError when they cannot work: ids outside
        the count, or several processes sharing what only Redis and PostgreSQL can share."""
        ids = self.shard_ids
        if ids is None:
            return None
        if isinstance(ids, str):
            ids = parse_shard_ids(ids)
        count = self.shard_count
        if count is None:
            raise ValueError(
                f"MOTIF_SHARD_IDS needs MOTIF_SHARD_COUNT, the bot's shards in all "
                f"(received MOTIF_SHARD_IDS={_ids_text(ids)!r})"
            )
        outside = [i for i in ids if not 0 <= i < count]
        if outside:
            raise ValueError(
                f"MOTIF_SHARD_IDS must be within 0 and {count - 1} for MOTIF_SHARD_COUNT={count} "
                f"(received {_ids_text(ids)!r})"
            )
        if len(ids) < count:
            # The other shards run in other processes: the members' cooldowns, the servers'
            # caps and the jobs in flight must be where every process sees them.
            shown = f"MOTIF_SHARD_IDS={_ids_text(ids)} of MOTIF_SHARD_COUNT={count}"
            if self.queue_url is None:
                raise ValueError(
                    f"running some of the shards ({shown}) needs MOTIF_QUEUE_URL: the bot "
                    "processes share the members' cooldowns and the servers' caps in Redis"
                )
            if not self.database_url.startswith("postgresql"):
                raise ValueError(
                    f"running some of the shards ({shown}) needs DATABASE_URL to be a "
                    "PostgreSQL URL that every bot process reaches (received "
                    f"{self.redacted_database_url!r})"
                )
        return ids

    @property
    def sharded(self) -> bool:
        return self.shard_count is not None

    @property
    def redacted_database_url(self) -> str:
        """The database URL without its password, for logs and error messages."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: os.environ); unset or empty means default."""
        env = os.environ if env is None else env
        engine = EngineSettings.from_env(env)
        return cls(
            **read_env(env, BOT_VARIABLES),
            data_dir=engine.data_dir,
            device=engine.device,
            log_level=engine.log_level,
            log_format=engine.log_format,
            engine=engine,
        )


# The bot's own variables (the engine's are engine.api.config.ENGINE_VARIABLES).
BOT_VARIABLES = (
    Variable("DISCORD_TOKEN", "discord_token"),
    Variable("DATABASE_URL", "database_url"),
    Variable(
        "MOTIF_COMPOSE_COOLDOWN_SECONDS",
        "compose_cooldown_seconds",
        float,
        COMPOSE_COOLDOWN_SECONDS,
    ),
    Variable("MOTIF_MAX_INFLIGHT_PER_GUILD", "max_inflight_per_guild", int, MAX_INFLIGHT_PER_GUILD),
    Variable("MOTIF_SQLITE_BUSY_TIMEOUT_MS", "sqlite_busy_timeout_ms", int, SQLITE_BUSY_TIMEOUT_MS),
    Variable("MOTIF_FINETUNE_AUTO_AFTER", "finetune_auto_after", int, FINETUNE_AUTO_AFTER),
    Variable("MOTIF_FINETUNE_STEPS", "finetune_steps", int, FINETUNE_STEPS),
    Variable(
        "MOTIF_SHUTDOWN_GRACE_SECONDS", "shutdown_grace_seconds", float, SHUTDOWN_GRACE_SECONDS
    ),
    Variable("MOTIF_METRICS_PORT", "metrics_port", int, METRICS_PORT),
    Variable("MOTIF_METRICS_HOST", "metrics_host"),
    Variable("DISCORD_API_BASE", "discord_api_base"),
    Variable("MOTIF_QUEUE_URL", "queue_url"),
    Variable("MOTIF_SHARD_COUNT", "shard_count", int, SHARD_COUNT),
    Variable("MOTIF_SHARD_IDS", "shard_ids"),
)


def parse_shard_ids(text: str) -> tuple[int, ...]:
    """ "0,1" or "0-3,8" as sorted ids; ValueError with the text when it is not that."""
    ids: set[int] = set()
    try:
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            first, last = int(low), int(high) if dash else int(low)
            if first < 0 or last < first or last > SHARD_COUNT.high:
                raise ValueError
            ids.update(range(first, last + 1))
    except ValueError:
        raise ValueError(
            f"MOTIF_SHARD_IDS must be shard ids like 0,1 or 0-3 (received {text!r})"
        ) from None
    return tuple(sorted(ids))


def _ids_text(ids: tuple[int, ...]) -> str:
    return ",".join(map(str, ids))
