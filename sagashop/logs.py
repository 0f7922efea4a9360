"""Logging as `--log-format` asks: the console's lines for a person, or one JSON object per line
for whatever collects the logs (`JsonFormatter`), with the fields a record carries in `extra=`
(a saga step's `order_id`, `event_id`, `service`, `step`, `outcome`) as keys of their own."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from sagashop.actors import SERVICE_NAMES
from sagashop.config import Settings

CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_STANDARD = {*logging.makeLogRecord({}).__dict__, "message", "asctime", "taskName"}
"""A record's own attributes: anything else on it came from `extra=`."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (ISO 8601, UTC), level, logger, message,
    the `extra=` fields, and the exception's text when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: Settings) -> None:
    """Log to stderr in the chosen format; `--log-steps on` opens the services' step lines."""
    handler = logging.StreamHandler(sys.stderr)
    json_lines = settings.log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(CONSOLE_FORMAT))
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    if settings.log_steps:
        for service in SERVICE_NAMES:
            logging.getLogger(f"sagashop.{service}").setLevel(logging.DEBUG)
