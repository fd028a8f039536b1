"""Settings: defaults, environment parsing, and errors that show what was received."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import Settings


def test_defaults_put_sqlite_in_the_data_dir() -> None:
    settings = Settings.from_env({})
    assert settings.discord_token is None
    assert settings.data_dir == Path("data")
    assert settings.database_url == f"sqlite+aiosqlite:///{Path('data/motif.db').resolve()}"
    assert settings.device == "auto"
    assert settings.compose_cooldown_seconds > 0
    assert settings.max_inflight_per_guild >= 1
    # Fine-tuning starts only when an admin asks, with the engine's own step count.
    assert (settings.finetune_auto_after, settings.finetune_steps) == (0, None)
    assert settings.engine.finetune_keep_versions >= 1  # the engine's rule (model_store)


def test_reads_every_variable(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "DISCORD_TOKEN": " abc.def ",
            "MOTIF_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgresql+asyncpg://motif:secret@db.example/motif",
            "MOTIF_DEVICE": "cuda:1",
            "MOTIF_COMPOSE_COOLDOWN_SECONDS": "2.5",
            "MOTIF_MAX_INFLIGHT_PER_GUILD": "4",
            "MOTIF_SQLITE_BUSY_TIMEOUT_MS": "2000",
            "MOTIF_LOG_LEVEL": "debug",
            "MOTIF_FINETUNE_AUTO_AFTER": "25",
            "MOTIF_FINETUNE_KEEP_VERSIONS": "5",
            "MOTIF_FINETUNE_STEPS": "60",
        }
    )
    assert settings.discord_token == "abc.def"
    assert settings.data_dir == tmp_path
    assert settings.database_url == "postgresql+asyncpg://motif:secret@db.example/motif"
    assert settings.redacted_database_url == "postgresql+asyncpg://motif:***@db.example/motif"
    assert (settings.device, settings.compose_cooldown_seconds) == ("cuda:1", 2.5)
    assert (settings.max_inflight_per_guild, settings.sqlite_busy_timeout_ms) == (4, 2000)
    assert settings.log_level == "DEBUG"
    assert (settings.finetune_auto_after, settings.engine.finetune_keep_versions) == (25, 5)
    assert settings.finetune_steps == 60


def test_data_dir_moves_the_default_database(tmp_path: Path) -> None:
    settings = Settings.from_env({"MOTIF_DATA_DIR": str(tmp_path / "d"), "DATABASE_URL": ""})
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'd' / 'motif.db'}"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:////var/lib/motif.db", "sqlite+aiosqlite:////var/lib/motif.db"),
    ],
)
def test_plain_urls_get_the_async_driver(given: str, expected: str) -> None:
    assert Settings.from_env({"DATABASE_URL": given}).database_url == expected


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("MOTIF_DEVICE", "gpu", "'gpu'"),
        ("MOTIF_COMPOSE_COOLDOWN_SECONDS", "soon", "'soon'"),
        ("MOTIF_COMPOSE_COOLDOWN_SECONDS", "-1", "-1"),
        ("MOTIF_COMPOSE_COOLDOWN_SECONDS", "nan", "'nan'"),
        ("MOTIF_MAX_INFLIGHT_PER_GUILD", "0", "0"),
        ("MOTIF_MAX_INFLIGHT_PER_GUILD", "2.5", "'2.5'"),
        ("MOTIF_SQLITE_BUSY_TIMEOUT_MS", "-5", "-5"),
        ("MOTIF_LOG_LEVEL", "loud", "'loud'"),
        ("MOTIF_FINETUNE_AUTO_AFTER", "-1", "-1"),
        ("MOTIF_FINETUNE_AUTO_AFTER", "some", "'some'"),
        ("MOTIF_FINETUNE_KEEP_VERSIONS", "0", "0"),
        ("MOTIF_FINETUNE_STEPS", "0", "0"),
        ("MOTIF_FINETUNE_STEPS", "1e9", "'1e9'"),
        ("DATABASE_URL", "mysql://u:pw@h/db", "mysql://u:***@h/db"),
        ("DATABASE_URL", "postgresql+psycopg2://h/db", "postgresql+psycopg2://h/db"),
        ("DATABASE_URL", "not a url", "'not a url'"),
    ],
)
def test_errors_name_the_variable_and_show_the_value(variable: str, value: str, shown: str) -> None:
    with pytest.raises(ValueError) as error:
        Settings.from_env({variable: value})
    message = str(error.value)
    assert variable in message
    assert shown in message
    assert "pw" not in message  # passwords never reach an error message


def test_token_stays_out_of_repr() -> None:
    settings = Settings(discord_token="very-secret", database_url="postgresql://u:pw@h/db")
    assert "very-secret" not in repr(settings)
    assert "pw" not in repr(settings)
