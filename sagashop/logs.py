"""Logging as `--log-format` asks: the console's lines for a person, or one JSON object per line
for whatever collects the logs (`JsonFormatter`), with the fields a record carries in `extra=`
(a saga step's `order_id`, `event_id`, `service`, `step`, `outcome`) as keys of their own."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from sagashop.config import Settings
from sagashop.credentials import redact

CONSOLE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_CONTROLS = (*range(0x20), *range(0x7F, 0xA0), *range(0x2028, 0x202F), *range(0x2066, 0x206A))
"""C0 and C1 controls, DEL, Unicode's line separators and its bidirectional overrides (which
reorder what a terminal shows): what could forge a log line or recolour a terminal."""
_ESCAPES = {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in _CONTROLS}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})

_STANDARD = {*logging.makeLogRecord({}).__dict__, "message", "asctime", "taskName"}
"""A record's own attributes: anything else on it came from `extra=`."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (ISO 8601, UTC), level, logger, message,
    the `extra=` fields, and the exception's text when there is one. JSON's escapes keep a
    value from outside on its line; URLs lose their passwords."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        entry.update((k, _redacted(v)) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str)  # its escapes keep every control character out


def _redacted(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def escape_controls(text: str) -> str:
    """`text` on one line, its control characters written as escapes (`\\n`, `\\x1b`)."""
    return text.translate(_ESCAPES)


class ConsoleFormatter(logging.Formatter):
    """`CONSOLE_FORMAT`, safe with values from outside (an order id from the bus, a path from
    HTTP): the message is escaped to one line, and every line of a traceback is indented, so
    each line that starts at the margin is a record this process wrote; URLs lose their
    passwords."""

    def __init__(self) -> None:
        super().__init__(CONSOLE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        lines = [redact(escape_controls(self.formatMessage(record)))]
        if record.exc_info:  # formatted here, not taken from `exc_text` another handler cached
            lines.append(_indented(self.formatException(record.exc_info)))
        if record.stack_info:
            lines.append(_indented(self.formatStack(record.stack_info)))
        return "\n".join(lines)


def _indented(text: str) -> str:
    lines = redact(text).split("\n")
    return "\n".join("  " + escape_controls(line) for line in lines)


SQL_LOGGERS = ("tortoise", "aiosqlite", "asyncpg", "sagashop.store.batch")
"""The statements the drivers and the batches run, a line each at DEBUG: hundreds a second."""


def configure_logging(settings: Settings) -> None:
    """Log to stderr in the chosen format; the SQL statements only with `--log-sql on`."""
    handler = logging.StreamHandler(sys.stderr)
    json_lines = settings.log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else ConsoleFormatter())
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    sql_level = logging.DEBUG if settings.log_sql else logging.INFO
    for name in SQL_LOGGERS:
        logging.getLogger(name).setLevel(max(sql_level, logging.getLogger().level))
