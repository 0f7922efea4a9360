"""Dead letters on the monitor page, in Chromium, on a system with a step that can be broken
for one item (as tests/system/test_faults.py makes one): a letter is listed with its service,
step, event, error and failures; replayed from the page once the bug is gone, its saga ends;
one closed with its failure event says so and offers no replay."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from sagashop.http import create_app
from tests.browser.chromium import ARTIFACTS
from tests.browser.conftest import Api
from tests.support import eventually, make_settings
from tests.system.test_faults import BROKEN_FILL, BROKEN_RESERVE, BUGGY_SERVICES

SAGA_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
async def server(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """The system with the inventory's fill and the item's reserve broken for chosen items."""
    settings = make_settings(redis_url, tmp_path_factory.mktemp("data"), None)
    async with TestServer(create_app(settings, BUGGY_SERVICES), host="127.0.0.1") as started:
        yield str(started.make_url("/"))


async def letter_of(api: Api, order: str) -> dict[str, Any]:
    async def find() -> list[dict[str, Any]]:
        letters = (await api.ok("GET", "/dead-letters?limit=200"))["deadLetters"]
        return [letter for letter in letters if letter["orderId"] == order]

    [letter] = await eventually(find)
    return letter


async def test_a_dead_letter_replayed_from_the_page_ends_its_saga(page: Any, api: Api) -> None:
    user, fragile = await api.new_user(), await api.new_item(stock=10)
    BROKEN_FILL.add(fragile)
    try:
        order = await api.buy(user, fragile, quantity=3)
        letter = await letter_of(api, order)
        row = page.locator(f"#letter-rows tr[data-letter-id='{letter['id']}']")
        await row.wait_for(timeout=SAGA_TIMEOUT_MS)  # the page saw the count change
    finally:
        BROKEN_FILL.discard(fragile)

    cells = await row.locator("td").all_inner_texts()
    assert cells[:4] == [letter["id"], "inventory", "fill", "balance.spent"]
    assert "RuntimeError: simulated bug" in cells[4]
    assert cells[5] == str(letter["failures"])
    assert await page.locator("#letters-none").is_hidden()
    await page.screenshot(path=str(ARTIFACTS / "monitor-dead-letter.png"), full_page=True)

    await row.locator("button:has-text('replay')").click()

    await page.wait_for_selector(f"#letter-result:has-text('{letter['id']}: its event went back')")
    await page.wait_for_selector(f"#timeline-title:has-text('order {order}')")
    await page.wait_for_selector(
        "#timeline-steps .chip[data-service='inventory']:has-text('fill → inventory.filled')",
        timeout=SAGA_TIMEOUT_MS,
    )
    bag = (await api.ok("GET", f"/user/{user}/inventory"))["inventory"]
    assert [(row["itemId"], row["quantity"]) for row in bag] == [(fragile, 3)]
    await row.locator("td.action:has-text('replayed')").wait_for()
    await page.screenshot(path=str(ARTIFACTS / "monitor-dead-letter-replayed.png"), full_page=True)


async def test_a_letter_closed_with_its_failure_offers_no_replay(page: Any, api: Api) -> None:
    user, cursed = await api.new_user(), await api.new_item(stock=10)
    BROKEN_RESERVE.add(cursed)
    try:
        order = await api.buy(user, cursed)
        letter = await letter_of(api, order)
    finally:
        BROKEN_RESERVE.discard(cursed)
    await page.reload()  # a closed letter is not counted: the page reads the list as it opens

    row = page.locator(f"#letter-rows tr[data-letter-id='{letter['id']}']")
    await row.wait_for()

    assert letter["closedWith"] == "item.rejected"
    action = await row.locator("td.action").inner_text()
    assert action == "closed with item.rejected: nothing to replay"
    assert await row.locator("button").count() == 0
    assert "replay" in await page.inner_text("#dead-letters .hint")
