"""Log lines as `--log-format` asks: the JSON formatter's objects, the format chosen by default
(console at a terminal, json otherwise), and `run.py`'s logging writing either."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import pytest

from sagashop import config
from sagashop.logs import JsonFormatter

STEP = {
    "order_id": "0b7e8f0c-4c1e-4a8e-9a43-6c1c2f1f5e11",
    "event_id": "5d3a4a52-1f8a-4f7e-8f1e-0f6c5e2b9a10",
    "service": "user",
    "step": "reserve",
    "outcome": "balance.reserved",
}


def json_line(emit: Any) -> dict[str, Any]:
    """What the formatter makes of the record `emit(logger)` logs, parsed back."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("sagashop.test-logs")
    logger.addHandler(handler)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    (line,) = out.getvalue().splitlines()
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_a_record_is_one_json_object_with_its_fields() -> None:
    entry = json_line(lambda logger: logger.warning("step %s", "taken", extra=STEP))

    assert {k: entry[k] for k in ("level", "logger", "message")} == {
        "level": "WARNING",
        "logger": "sagashop.test-logs",
        "message": "step taken",
    }
    assert {k: entry[k] for k in STEP} == STEP
    assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0)
    assert "exception" not in entry


def test_an_exception_travels_as_its_text() -> None:
    def fail(logger: logging.Logger) -> None:
        try:
            raise ValueError("a poison payload")
        except ValueError:
            logger.exception("gave up", extra={"order_id": STEP["order_id"]})

    entry = json_line(fail)

    assert entry["message"] == "gave up"
    assert entry["order_id"] == STEP["order_id"]
    assert entry["exception"].startswith("Traceback")
    assert entry["exception"].endswith("ValueError: a poison payload")


def test_a_field_json_cannot_hold_is_written_as_text() -> None:
    entry = json_line(lambda logger: logger.warning("odd", extra={"data_dir": Path("/srv/data")}))
    assert entry["data_dir"] == "/srv/data"


@pytest.fixture
def terminal() -> Iterator[TextIO]:
    """A real terminal: the far end of a pseudo-terminal."""
    far, near = os.openpty()
    try:
        with open(near, "w") as stream:
            yield stream
    finally:
        os.close(far)  # first closed, the near end would stop being a terminal


def loaded(env: dict[str, str] | None = None, argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.load(parser.parse_args(argv or []), env or {}).log_format


def test_the_default_is_console_at_a_terminal(
    terminal: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", terminal)
    assert loaded() == "console"


def test_the_default_is_json_when_stderr_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert loaded() == "json"


def test_the_format_named_wins_over_the_terminal(
    terminal: TextIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stderr", terminal)
    assert loaded({"LOG_FORMAT": "JSON"}) == "json"
    assert loaded({"LOG_FORMAT": "json"}, ["--log-format", "console"]) == "console"


def test_an_unknown_format_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="--log-format: 'xml' is not one of console, json"):
        loaded({"LOG_FORMAT": "xml"})


def logged_by_run_py(log_format: str) -> str:
    """stderr of a process that sets up logging as `run.py` does, then logs one step."""
    script = (
        "import logging, sagashop.config as c, sagashop.logs as l;"
        f"l.configure_logging(c.Settings(log_format={log_format!r}));"
        f"logging.getLogger('sagashop.user').warning('a step', extra={STEP!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stderr


def test_run_py_logs_json_lines_when_asked() -> None:
    entry = json.loads(logged_by_run_py("json"))
    assert (entry["message"], entry["logger"], entry["outcome"]) == (
        "a step",
        "sagashop.user",
        "balance.reserved",
    )


def test_the_console_format_stays_as_it_was() -> None:
    line = logged_by_run_py("console")
    assert line.rstrip("\n").endswith(" WARNING sagashop.user: a step")
    assert "{" not in line


@pytest.mark.parametrize(("log_sql", "shown"), [(False, False), (True, True)])
def test_the_sql_statements_are_logged_only_when_asked_even_at_debug(
    log_sql: bool, shown: bool
) -> None:
    """At DEBUG, 594 of 645 lines were the drivers' statements: `--log-sql on` opens them."""
    script = (
        "import logging, sagashop.config as c, sagashop.logs as l;"
        f"l.configure_logging(c.Settings(log_level='DEBUG', log_sql={log_sql!r}));"
        "[logging.getLogger(n).debug('SELECT 1') for n in l.SQL_LOGGERS + ('tortoise.db_client',)];"
        "logging.getLogger('sagashop.user').debug('a step of mine')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert ("SELECT 1" in done.stderr) is shown
    assert done.stderr.count("SELECT 1") == (5 if shown else 0)
    assert "a step of mine" in done.stderr
