"""Helpers more than one unit test module needs."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def logging_to_text(formatter: logging.Formatter, name: str) -> Iterator[io.StringIO]:
    """While inside, the logger `name` also writes its records through `formatter` into the text
    answered, so that a test reads exactly what a log line would show."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
