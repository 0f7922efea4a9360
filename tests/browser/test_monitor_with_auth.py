"""The monitor page on a server that checks tokens: it asks for an operator token, and with one
it goes live (its stream carries the token in a header, which EventSource could not)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from sagashop import tokens
from sagashop.http import create_app
from sagashop.tokens import SigningKey
from tests.browser.chromium import chromium_browser
from tests.support import make_settings

KEYS = (SigningKey("k1", "a-key-for-the-monitor-page-browser-test"),)


@pytest.fixture(scope="module")
async def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    settings = make_settings(
        redis_url, tmp_path_factory.mktemp("data"), None, auth=True, auth_keys=KEYS
    )
    async with TestServer(create_app(settings), host="127.0.0.1") as started:
        yield str(started.make_url("/"))


@pytest.fixture
async def page(server: str) -> AsyncIterator[Any]:
    async with chromium_browser() as browser:
        context = await browser.new_context(bypass_csp=True)  # for wait_for_function
        opened = await context.new_page()
        await opened.goto(server)
        yield opened
        await context.close()


async def test_without_a_token_the_page_asks_for_one(page: Any) -> None:
    await page.wait_for_selector("#token-form:not([hidden])")
    assert "paste an operator token" in await page.inner_text("#connection")


async def test_a_player_token_is_not_enough(page: Any) -> None:
    player = tokens.issue(KEYS, tokens.player("0b6f8e3c-6a65-4a43-9c1c-0d3f6e4f7a10"), 600)
    await page.fill("#token", player)
    await page.click("#token-form button")
    await page.wait_for_selector("#connection:has-text('not an operator')")


async def test_with_an_operator_token_the_page_goes_live(page: Any) -> None:
    await page.fill("#token", tokens.issue(KEYS, tokens.OPERATOR, 600))
    await page.click("#token-form button")
    await page.wait_for_selector("#connection[data-state='live']")
    await page.wait_for_function(
        "/^[0-9]+$/.test(document.querySelector('#count-in-flight').textContent)"
    )
    assert await page.locator("#token-form").is_hidden()


async def test_with_an_operator_token_the_page_lists_dead_letters_and_provokes_failures(
    page: Any,
) -> None:
    """The page's newer reads and controls carry the token too: the dead letters (operators'
    only) are read, and a failure button makes its player, item and order."""
    await page.fill("#token", tokens.issue(KEYS, tokens.OPERATOR, 600))
    await page.click("#token-form button")
    await page.wait_for_selector("#connection[data-state='live']")
    await page.wait_for_selector("#letters-none:not([hidden])")

    await page.click("#failures button[data-failure='stock']")

    await page.wait_for_selector("#timeline-status.status-CANCELLED", timeout=30_000)
    assert "out of stock" in await page.inner_text("#timeline-status")
