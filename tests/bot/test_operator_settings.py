"""The settings an operator adds for running Motif as a service (bot.config)."""

from __future__ import annotations

import pytest

from bot import Settings
from bot.config import DEFAULT_METRICS_HOST, DEFAULT_SHUTDOWN_GRACE_SECONDS


def test_by_default_logs_are_text_metrics_are_off_and_the_grace_fits_kubernetes() -> None:
    settings = Settings.from_env({})
    assert settings.log_format == "text"
    assert settings.metrics_port is None and settings.metrics_host == DEFAULT_METRICS_HOST
    assert settings.discord_api_base is None
    # Kubernetes kills a pod 30 s after SIGTERM: the drain and the close must fit before.
    assert settings.shutdown_grace_seconds == DEFAULT_SHUTDOWN_GRACE_SECONDS < 30


def test_reads_the_operator_variables() -> None:
    settings = Settings.from_env(
        {
            "MOTIF_LOG_FORMAT": "JSON",
            "MOTIF_SHUTDOWN_GRACE_SECONDS": "7.5",
            "MOTIF_METRICS_PORT": "9108",
            "MOTIF_METRICS_HOST": "0.0.0.0",
            "DISCORD_API_BASE": "http://proxy:8080/api/v10/",
        }
    )
    assert settings.log_format == "json"
    assert settings.shutdown_grace_seconds == 7.5
    assert (settings.metrics_host, settings.metrics_port) == ("0.0.0.0", 9108)
    assert settings.discord_api_base == "http://proxy:8080/api/v10"


@pytest.mark.parametrize(
    ("variable", "value", "shown"),
    [
        ("MOTIF_LOG_FORMAT", "yaml", "'yaml'"),
        ("MOTIF_SHUTDOWN_GRACE_SECONDS", "-1", "-1"),
        ("MOTIF_SHUTDOWN_GRACE_SECONDS", "soon", "'soon'"),
        ("MOTIF_METRICS_PORT", "70000", "70000"),
        ("MOTIF_METRICS_PORT", "http", "'http'"),
        ("DISCORD_API_BASE", "discord.com/api", "'discord.com/api'"),
    ],
)
def test_a_bad_value_names_the_variable_and_what_was_received(
    variable: str, value: str, shown: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{variable} must .*\(received {shown}\)$"):
        Settings.from_env({variable: value})
