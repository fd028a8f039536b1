"""MOTIF_LOG_FORMAT: one JSON object per line for collectors, text for people."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from engine.api.logs import JsonFormatter, check_log_format, configure_logging


def _record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord(
        "bot.cogs.compose", logging.WARNING, __file__, 7, message, args, exc_info
    )  # type: ignore[arg-type]


def test_a_record_is_one_line_of_json_with_the_fields_collectors_need() -> None:
    line = JsonFormatter("bot").format(_record("guild %s: composition #%d\nposted", 12, 3))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "guild 12: composition #3\nposted"
    assert (entry["level"], entry["logger"], entry["process"]) == (
        "WARNING",
        "bot.cogs.compose",
        "bot",
    )
    assert entry["time"].endswith("+00:00") and "T" in entry["time"]
    assert isinstance(entry["pid"], int) and "exception" not in entry


def test_an_exception_travels_inside_its_line() -> None:
    try:
        raise ValueError("bars must be within 1 and 64 (received 80)")
    except ValueError:
        record = _record("composition failed", exc_info=sys.exc_info())
    entry = json.loads(JsonFormatter("engine").format(record))
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: bars must be within 1 and 64 (received 80)")


def test_values_json_cannot_encode_are_written_as_text() -> None:
    entry = json.loads(JsonFormatter("bot").format(_record("%s", object())))
    assert entry["message"].startswith("<object object at")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_configure_logging_sends_every_logger_to_stderr_in_the_format(
    monkeypatch: pytest.MonkeyPatch, log_format: str
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(level="info", log_format=log_format, process="engine")
        logging.getLogger("engine.serving.server").info("serving on %s", "cpu")
        logging.getLogger("engine.serving.server").debug("not shown at INFO")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    if log_format == "json":
        assert json.loads(lines[0])["message"] == "serving on cpu"
    else:
        assert " engine[" in lines[0] and lines[0].endswith("engine.serving.server: serving on cpu")


def test_an_unknown_format_names_the_variable_and_the_value() -> None:
    with pytest.raises(
        ValueError,
        match=r"MOTIF_LOG_FORMAT must be one of text, json "
        r"\(received 'yaml'\)",
    ):
        check_log_format("yaml")
