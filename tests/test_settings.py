"""Every variable is checked once at start: a bad one stops `python -m bot` and
`python -m engine ...` with one line naming it, the value received and what is allowed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import BOT_VARIABLES, Settings
from engine.api.config import ENGINE_VARIABLES, WORK_VARIABLES, EngineSettings, WorkLimits
from engine.api.limits import DEVICES, RENDER_THREADS

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
ALL_VARIABLES = {v.name: v for v in (*ENGINE_VARIABLES, *WORK_VARIABLES, *BOT_VARIABLES)}

# (variable, bad value, how the value shows in the message)
BAD = [
    ("MOTIF_CHECKPOINT", "/nowhere/base.pt", "'/nowhere/base.pt'"),
    ("MOTIF_SOUNDFONT", "/nowhere/font.sf2", "'/nowhere/font.sf2'"),
    ("MOTIF_DEVICE", "gpu", "'gpu'"),
    ("MOTIF_MAX_ROWS", "0", "0"),
    ("MOTIF_MAX_ROWS", "lots", "'lots'"),
    ("MOTIF_RENDER_THREADS", "0", "0"),
    ("MOTIF_RENDER_THREADS", "1.5", "'1.5'"),
    ("MOTIF_MODEL_CACHE_MB", "-1", "-1"),
    ("MOTIF_THREADS", "0", "0"),
    ("MOTIF_FINETUNE_THREADS", "0", "0"),
    ("MOTIF_LOG_LEVEL", "loud", "'loud'"),
    ("MOTIF_LOG_FORMAT", "yaml", "'yaml'"),
    ("MOTIF_MAX_CLIP_SECONDS", "0", "0"),
    ("MOTIF_MAX_CLIP_SECONDS", "inf", "inf"),
    ("MOTIF_MAX_COMPOSITION_SECONDS", "nan", "'nan'"),
    ("MOTIF_MAX_COMPOSITION_TOKENS", "10", "10"),
    ("MOTIF_MAX_SEED_NOTES", "0", "0"),
    ("MOTIF_MAX_RENDER_SECONDS", "3601", "3601"),
    ("MOTIF_COMPOSE_COOLDOWN_SECONDS", "-1", "-1"),
    ("MOTIF_MAX_INFLIGHT_PER_GUILD", "0", "0"),
    ("MOTIF_SQLITE_BUSY_TIMEOUT_MS", "-5", "-5"),
    ("MOTIF_FINETUNE_AUTO_AFTER", "-1", "-1"),
    ("MOTIF_FINETUNE_KEEP_VERSIONS", "0", "0"),
    ("MOTIF_FINETUNE_STEPS", "1e9", "'1e9'"),
    ("MOTIF_SHUTDOWN_GRACE_SECONDS", "-1", "-1"),
    ("MOTIF_METRICS_PORT", "70000", "70000"),
    ("DISCORD_API_BASE", "discord.com/api", "'discord.com/api'"),
    ("DATABASE_URL", "mysql://u:pw@h/db", "mysql://u:***@h/db"),
    ("MOTIF_QUEUE_URL", "http://u:pw@h:6379/0", "'http://u:***@h:6379/0'"),
    ("MOTIF_SHARD_COUNT", "0", "0"),
    ("MOTIF_SHARD_IDS", "one", "'one'"),
]
ENGINE_BAD = [
    case for case in BAD if case[0] in {v.name for v in (*ENGINE_VARIABLES, *WORK_VARIABLES)}
]
# Variables any value of which is usable (a path to create, a token to try).
ANY_VALUE = {"MOTIF_DATA_DIR", "DISCORD_TOKEN", "MOTIF_METRICS_HOST"}


def allowed(variable: str) -> str:
    """The part of the message that says what is allowed."""
    spec = ALL_VARIABLES[variable]
    if spec.allowed is not None:
        return spec.allowed.text
    return {
        "MOTIF_CHECKPOINT": "an existing file",
        "MOTIF_SOUNDFONT": "an existing file",
        "MOTIF_DEVICE": DEVICES,
        "MOTIF_LOG_LEVEL": "one of DEBUG, INFO",
        "MOTIF_LOG_FORMAT": "one of text, json",
        "DISCORD_API_BASE": "an http(s) URL",
        "DATABASE_URL": "URL",
        "MOTIF_QUEUE_URL": "a redis://",
        "MOTIF_SHARD_IDS": "shard ids like 0,1",
    }[variable]


def test_every_variable_has_a_bad_value_tested_and_a_row_in_the_readme():
    assert {name for name, _, _ in BAD} | ANY_VALUE == set(ALL_VARIABLES)
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for name in ALL_VARIABLES:
        assert f"| `{name}` |" in table, f"{name} is missing from README's configuration"


# MOTIF_* names in the code that are not settings: child_env's example of a secret-looking name
# it never passes on.
NOT_SETTINGS = {"MOTIF_DATABASE_URL"}


def test_every_motif_variable_the_code_names_is_a_checked_setting_and_the_readme_lists_no_other():
    named: set[str] = set()
    for folder in ("bot", "engine", "soundfonts", "deploy"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".example", ".service", ".md"}:
                named |= set(re.findall(r"\bMOTIF_[A-Z0-9_]+", path.read_text()))
    assert named - NOT_SETTINGS <= set(ALL_VARIABLES), named - NOT_SETTINGS - set(ALL_VARIABLES)
    table = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `([A-Z0-9_]+)` \|", table, flags=re.M))
    assert rows == set(ALL_VARIABLES)


@pytest.mark.parametrize(("variable", "value", "shown"), BAD, ids=[f"{v}={x}" for v, x, _ in BAD])
def test_the_bots_settings_refuse_every_bad_value(variable: str, value: str, shown: str):
    with pytest.raises(ValueError) as error:
        Settings.from_env({variable: value})
    message = str(error.value)
    assert variable in message and shown in message and allowed(variable) in message
    assert "pw" not in message


@pytest.mark.parametrize(
    ("variable", "value", "shown"), ENGINE_BAD, ids=[f"{v}={x}" for v, x, _ in ENGINE_BAD]
)
def test_the_engines_settings_refuse_every_bad_value(variable: str, value: str, shown: str):
    with pytest.raises(ValueError) as error:
        EngineSettings.from_env({variable: value})
    assert str(error.value) == expected_error(variable, value)


def expected_error(variable: str, value: str) -> str:
    """The message the bot's settings give (the engine's must be the same)."""
    try:
        Settings.from_env({variable: value})
    except ValueError as exc:
        return str(exc)
    raise AssertionError(f"{variable}={value} was accepted")


def test_the_engine_gets_the_values_the_bot_checked(tmp_path: Path):
    env = {
        "MOTIF_DATA_DIR": str(tmp_path / "d"),
        "MOTIF_RENDER_THREADS": "3",
        "MOTIF_MAX_CLIP_SECONDS": "90",
        "MOTIF_DEVICE": "cpu",
        "DISCORD_TOKEN": "secret",
        "DATABASE_URL": "sqlite:///x.db",
    }
    settings = Settings.from_env(env)
    passed = settings.engine.to_env()
    assert passed["MOTIF_DATA_DIR"] == str((tmp_path / "d").resolve())
    assert (passed["MOTIF_RENDER_THREADS"], passed["MOTIF_DEVICE"]) == ("3", "cpu")
    assert EngineSettings.from_env(passed) == settings.engine
    assert settings.engine.work == WorkLimits(max_clip_seconds=90.0)
    # Only the engine's own variables: the bot's secrets are not among them.
    assert set(passed) <= {v.name for v in (*ENGINE_VARIABLES, *WORK_VARIABLES)}


def test_defaults_are_valid_and_shared(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, device="cpu", log_level="debug")
    assert settings.engine.data_dir == tmp_path and settings.engine.device == "cpu"
    assert settings.log_level == settings.engine.log_level == "DEBUG"
    assert settings.engine.render_threads in RENDER_THREADS
    assert EngineSettings.from_env({}) == EngineSettings()


def run(*argv: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ALL_VARIABLES and k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *argv],
        env={**clean, "PYTHONPATH": str(REPO), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], variable: str, value: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [f"error: {expected_error(variable, value)}"]


@pytest.mark.parametrize(("variable", "value", "shown"), BAD, ids=[f"{v}={x}" for v, x, _ in BAD])
def test_python_m_bot_stops_at_start_before_touching_the_disk(
    tmp_path: Path, variable: str, value: str, shown: str
):
    # With a token: the variable, not the missing token, is what stops it.
    result = run("-m", "bot", cwd=tmp_path, DISCORD_TOKEN="not-a-real-token", **{variable: value})
    assert_one_line(result, variable, value)
    assert list(tmp_path.iterdir()) == []  # no data dir, no database


@pytest.mark.parametrize(
    ("variable", "value", "shown"), ENGINE_BAD, ids=[f"{v}={x}" for v, x, _ in ENGINE_BAD]
)
def test_python_m_engine_compose_stops_at_start(
    tmp_path: Path, variable: str, value: str, shown: str
):
    result = run(
        "-m", "engine", "compose", "--bars", "1", "--out", "out", cwd=tmp_path, **{variable: value}
    )
    assert_one_line(result, variable, value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MOTIF_RENDER_THREADS", "0"), ("MOTIF_MAX_ROWS", "0"), ("MOTIF_MAX_CLIP_SECONDS", "0")],
)
def test_python_m_engine_serve_stops_at_start(tmp_path: Path, variable: str, value: str):
    # Before it even looks at its socket (fd 99 is not one).
    result = run("-m", "engine", "serve", "--fd", "99", cwd=tmp_path, **{variable: value})
    assert_one_line(result, variable, value)


PG = "postgresql+asyncpg://u:pw@db/motif"
REDIS = "redis://queue:6379/0"


@pytest.mark.parametrize(
    ("env", "ids"),
    [
        ({"MOTIF_SHARD_COUNT": "4"}, None),  # one process runs every shard
        ({"MOTIF_SHARD_COUNT": "2", "MOTIF_SHARD_IDS": "1,0"}, (0, 1)),
        (
            {
                "MOTIF_SHARD_COUNT": "8",
                "MOTIF_SHARD_IDS": "0-2, 6",
                "MOTIF_QUEUE_URL": REDIS,
                "DATABASE_URL": PG,
            },
            (0, 1, 2, 6),
        ),
    ],
)
def test_shard_settings_that_can_work(env: dict[str, str], ids: tuple[int, ...] | None):
    settings = Settings.from_env(env)
    assert settings.sharded and settings.shard_ids == ids


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MOTIF_SHARD_IDS": "0"}, "MOTIF_SHARD_IDS needs MOTIF_SHARD_COUNT"),
        (
            {"MOTIF_SHARD_COUNT": "2", "MOTIF_SHARD_IDS": "1,2"},
            "MOTIF_SHARD_IDS must be within 0 and 1 for MOTIF_SHARD_COUNT=2 (received '1,2')",
        ),
        ({"MOTIF_SHARD_COUNT": "2", "MOTIF_SHARD_IDS": "3-1"}, "(received '3-1')"),
        (
            {"MOTIF_SHARD_COUNT": "2", "MOTIF_SHARD_IDS": "0", "DATABASE_URL": PG},
            "(MOTIF_SHARD_IDS=0 of MOTIF_SHARD_COUNT=2) needs MOTIF_QUEUE_URL",
        ),
        (
            {"MOTIF_SHARD_COUNT": "2", "MOTIF_SHARD_IDS": "1", "MOTIF_QUEUE_URL": REDIS},
            "needs DATABASE_URL to be a PostgreSQL URL",
        ),
    ],
)
def test_shard_settings_that_cannot_work_say_why(env: dict[str, str], message: str):
    with pytest.raises(ValueError) as error:
        Settings.from_env(env)
    assert message in str(error.value)
