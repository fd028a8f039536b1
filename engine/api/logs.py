"""Log lines for the bot and the engine process alike: text for people, JSON for collectors.

    configure_logging(level="INFO", log_format="json", process="engine")

`json` writes one object per line: time (UTC, ISO 8601), level, logger, message, process,
pid, and exception (the formatted traceback) when there is one, so a log pipeline (journald,
Loki, Elasticsearch, ...) can parse and filter every line, tracebacks included. The bot
process imports this too: it uses the standard library only (no torch).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

LOG_FORMATS = ("text", "json")
LOG_FORMAT_VARIABLE = "MOTIF_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s {process}[%(process)d] %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in messages are escaped)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": self._process,
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def check_log_format(value: str) -> str:
    """`value` lower-cased; ValueError naming the variable when it is not a known format."""
    log_format = value.strip().lower()
    if log_format not in LOG_FORMATS:
        raise ValueError(
            f"{LOG_FORMAT_VARIABLE} must be one of {', '.join(LOG_FORMATS)} (received {value!r})"
        )
    return log_format


def configure_logging(*, level: str, log_format: str, process: str) -> None:
    """Send every log record to stderr in `log_format` ("text" or "json"); `process` names
    the process in each line (the bot's and the engine's lines share one stream)."""
    handler = logging.StreamHandler(sys.stderr)
    if check_log_format(log_format) == "json":
        handler.setFormatter(JsonFormatter(process))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT.format(process=process)))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
