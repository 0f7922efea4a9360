"""The system on a real port, a headless Chromium, and a page of the monitor open on it; and
the API as a test drives it beside the page (load, set-up the page does not offer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sagashop.http import create_app
from tests.browser.chromium import chromium_browser
from tests.support import make_settings


@pytest.fixture(scope="module")
async def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The whole system on a real port, as `run.py` serves it (SQLite, Pub/Sub)."""
    settings = make_settings(redis_url, tmp_path_factory.mktemp("data"), None)
    async with TestServer(create_app(settings), host="127.0.0.1") as started:
        yield str(started.make_url("/"))


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with chromium_browser() as launched:
        yield launched


@pytest.fixture
async def page(browser: Any, server: str) -> AsyncIterator[Any]:
    """A fresh page on the monitor, live; any console error or page error fails the test."""
    # bypass_csp: Playwright's wait_for_function evaluates its text in the page, which the
    # page's policy forbids (no 'unsafe-eval'); test_headers.py loads the page under it.
    context = await browser.new_context(viewport={"width": 1280, "height": 1100}, bypass_csp=True)
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    await opened.goto(server)
    await opened.wait_for_selector("#connection[data-state='live']")
    yield opened
    await context.close()
    assert problems == [], f"the page logged errors: {problems}"


class Api:
    """The front door, called as any client calls it."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def ok(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        async with self.session.request(method, path, **kwargs) as response:
            body = await response.json()
            assert response.status == expect, f"{method} {path} answered {response.status}: {body}"
            return body

    async def new_user(self, balance: int = 1_000_000) -> str:
        body = {"username": "tester", "balance": balance}
        return str((await self.ok("POST", "/users", 201, json=body))["id"])

    async def new_item(self, price: int = 10, stock: int = 100_000) -> str:
        body = {"name": "Test item", "price": price, "stock": stock}
        return str((await self.ok("POST", "/items", 201, json=body))["id"])

    async def buy(self, user: str, item: str, quantity: int = 1) -> str:
        body = {"userId": user, "itemId": item, "quantity": quantity}
        return str((await self.ok("POST", "/orders", 201, json=body))["id"])


@pytest.fixture
async def api(server: str) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(base_url=server) as session:
        yield Api(session)
