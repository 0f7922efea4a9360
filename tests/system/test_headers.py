"""Every answer says how a browser may treat it: no sniffing, a content policy that runs
nothing from JSON, no caching of player data, and no server version to look up exploits for."""

from __future__ import annotations

from typing import Any

import pytest

from sagashop.http.headers import DOCS_POLICY, JSON_POLICY, MONITOR_POLICY
from tests.browser.chromium import chromium_browser
from tests.support import Shop, on_systems

# Headers are the front door's: neither the database nor the transport matters.
pytestmark = on_systems("sqlite-pubsub")


async def headers_of(shop: Shop, path: str, **kwargs: Any) -> tuple[int, dict[str, str]]:
    async with shop.client.request("GET", path, **kwargs) as answer:
        return answer.status, dict(answer.headers)


@pytest.mark.parametrize(
    ("path", "policy"),
    [
        ("/items", JSON_POLICY),
        ("/audit", JSON_POLICY),
        ("/no/such/path", JSON_POLICY),  # an error, made by the error mapping
        ("/user/not-a-uuid/balance", JSON_POLICY),
        ("/openapi.json", JSON_POLICY),
        ("/", MONITOR_POLICY),
        ("/docs", DOCS_POLICY),
    ],
)
async def test_every_answer_has_the_security_headers(shop: Shop, path: str, policy: str) -> None:
    _status, headers = await headers_of(shop, path)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == policy
    assert headers["Cache-Control"] == "no-store"
    assert "aiohttp" not in headers["Server"]
    assert "Python" not in headers["Server"]


async def test_player_data_is_never_stored_by_a_cache(shop: Shop) -> None:
    user = await shop.new_user()
    for read in ("balance", "inventory", "orders", "notifications"):
        status, headers = await headers_of(shop, f"/user/{user}/{read}")
        assert status == 200
        assert headers["Cache-Control"] == "no-store", read


async def test_static_files_are_not_sniffed_and_may_be_cached(shop: Shop) -> None:
    status, headers = await headers_of(shop, "/monitor/monitor.js")
    assert status == 200
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"] == MONITOR_POLICY
    assert "Cache-Control" not in headers


async def test_the_event_stream_has_them_too(shop: Shop) -> None:
    """Sent by its handler as it goes, out of a middleware's reach: the hook still sees it."""
    async with shop.client.request("GET", "/monitor/events") as answer:
        assert answer.status == 200
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"
        assert "aiohttp" not in answer.headers["Server"]


@pytest.mark.parametrize(
    ("path", "drawn"),
    [
        # Swagger UI starts from an inline script (allowed by its hash) and sets inline styles
        ("/docs", ".swagger-ui .opblock-summary-path"),
        # the monitor: its own script and styles, and its event stream
        ("/", "#connection[data-state='live']"),
    ],
)
async def test_the_pages_still_work_under_their_policy(shop: Shop, path: str, drawn: str) -> None:
    """A policy that blocked what a page needs would leave it blank, with a console error."""
    url = str(shop.client.make_url(path))  # type: ignore[attr-defined]
    async with chromium_browser() as browser:
        page = await browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        await page.goto(url)
        await page.wait_for_selector(drawn)
        assert problems == [], f"{path} logged errors: {problems}"
