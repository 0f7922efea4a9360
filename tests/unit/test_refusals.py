"""The log of requests the parser refused: a burst a window, then a count; a bug's traceback
as it came."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadStatusLine

from sagashop.http.server import Refusals


def test_a_burst_a_window_then_how_many_were_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    refusals = Refusals(burst=3, window=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="sagashop.http"):
        for _ in range(50):
            _refused(refusals)
        now[0] = 10.0
        _refused(refusals)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        *["an unreadable request from 10.0.0.1: BadStatusLine"] * 3,
        "47 more unreadable requests were not logged",
        "an unreadable request from 10.0.0.1: BadStatusLine",
    ]
    assert all(record.exc_info is None for record in caplog.records)


def _refused(refusals: Refusals) -> None:
    """As aiohttp's handler logs a request its parser refused."""
    refusals.exception("Error handling request from %s", "10.0.0.1", exc_info=BadStatusLine("x"))


def test_anything_else_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    try:
        raise RuntimeError("a bug under the app")
    except RuntimeError as error:
        Refusals().exception("Error handling request from %s", "10.0.0.1", exc_info=error)
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
