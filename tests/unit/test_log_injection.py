"""Values from outside (an order id from the bus, a path from HTTP, a reason) cannot forge a log
line or recolour a terminal: the console escapes control characters, JSON's escapes do the same,
and a traceback's lines stay indented under their record."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from sagashop.logs import ConsoleFormatter, JsonFormatter, escape_controls
from tests.unit.helpers import logging_to_text

HOSTILE = "id-1\n2026-01-01 00:00:00,000 INFO    sagashop: forged\x1b[31m red\r\x00\u2028\u202e"


def logged(formatter: logging.Formatter, *, failing: bool = False) -> str:
    logger = logging.getLogger("sagashop.test-injection")
    with logging_to_text(formatter, logger.name) as out:
        if not failing:
            logger.warning("order %s expired", HOSTILE)
        else:
            try:
                raise ValueError(f"unknown order {HOSTILE}")
            except ValueError:
                logger.exception("gave up on order %s", HOSTILE)
    return out.getvalue()


def test_control_characters_are_escaped() -> None:
    assert escape_controls("a\nb\x1b[31mc\td\x7fe\u2028f\u202eg") == (
        "a\\nb\\x1b[31mc\\td\\x7fe\\u2028f\\u202eg"
    )
    assert escape_controls("plain, ünïcödé and 日本") == "plain, ünïcödé and 日本"


def test_a_console_line_with_a_hostile_value_stays_one_escaped_line() -> None:
    (line,) = logged(ConsoleFormatter()).splitlines()

    assert line.endswith(
        "sagashop.test-injection: order id-1\\n2026-01-01 00:00:00,000 INFO    sagashop: "
        "forged\\x1b[31m red\\r\\x00\\u2028\\u202e expired"
    )
    assert not any(char in line for char in "\x1b\r\x00\u2028\u202e")


def test_a_traceback_s_lines_are_indented_so_none_poses_as_a_record() -> None:
    first, *rest = logged(ConsoleFormatter(), failing=True).splitlines()

    assert "gave up on order id-1\\n2026" in first
    assert rest[0] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") for line in rest)
    assert not any("\x1b" in line for line in rest)


@pytest.mark.parametrize("failing", [False, True])
def test_a_json_line_with_a_hostile_value_stays_one_line(failing: bool) -> None:
    (line,) = logged(JsonFormatter(), failing=failing).splitlines()

    assert not any(char in line for char in "\x1b\r\x00\u2028\u202e")
    assert HOSTILE in json.loads(line)["message"]


def test_run_py_s_console_keeps_a_hostile_value_on_one_line() -> None:
    script = (
        "import logging, sagashop.config as c, sagashop.logs as l;"
        "l.configure_logging(c.Settings(log_format='console'));"
        f"logging.getLogger('sagashop.order').warning('order %s', {HOSTILE!r})"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    (line,) = done.stderr.splitlines()
    assert "order id-1\\n2026" in line
