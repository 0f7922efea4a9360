"""A headless Chromium for the browser tests: Debian's `chromium` package, driven by Playwright
through `executable_path` (Playwright's own browser download cannot work offline).

Where there is no such browser (or no Playwright) the tests skip, saying why; with
`REQUIRE_SERVICES=1` (CI, which installs Chromium) that is a failure instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support import REQUIRE_SERVICES

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CANDIDATES = ("chromium", "chromium-browser")


def _executable() -> str | None:
    named = os.environ.get("CHROMIUM")
    return named or next(filter(None, map(shutil.which, CANDIDATES)), None)


def _unavailable(reason: str) -> None:
    message = (
        f"{reason}: the browser tests need Debian's chromium (apt-get install -y chromium) "
        "or CHROMIUM=/path/to/chrome; REQUIRE_SERVICES=1 makes this a failure"
    )
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@asynccontextmanager
async def chromium_browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed")
    executable = _executable()
    if executable is None:
        _unavailable("no Chromium on PATH")
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            await browser.close()
