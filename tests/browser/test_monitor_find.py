"""The monitor's orders list in Chromium: an order found by its id or its first characters, a
player's orders, each list a page at a time with each order once, and a time column; and the
four failure buttons, each ending in its own compensated timeline."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from sagashop.actors.payment import OVER_THE_LIMIT
from tests.browser.chromium import ARTIFACTS
from tests.browser.conftest import Api

SAGA_TIMEOUT_MS = 30_000
PAGE_SIZE = 25


async def shown_ids(page: Any) -> list[str]:
    ids: list[str] = await page.locator("#order-rows tr").evaluate_all(
        "rows => rows.map(r => r.dataset.orderId)"
    )
    return ids


async def find(page: Any, by: str, text: str) -> None:
    await page.select_option("#search-by", by)
    await page.fill("#search-text", text)
    await page.click("#search-button")


SHOWN_THEN_OLDER = """() => {
  // The rows shown and the click on "older" in one task: the first page refreshes itself every
  // 2 s, and "older" follows the `next` of the rows shown when it is clicked.
  const ids = [...document.querySelectorAll('#order-rows tr')].map((r) => r.dataset.orderId);
  document.querySelector('#older').click();
  return ids;
}"""


async def next_page(page: Any) -> tuple[list[str], list[str]]:
    """Click "older": the rows shown when it was clicked, and those of the page it brings."""
    number = await page.inner_text("#page-number")
    before: list[str] = await page.evaluate(SHOWN_THEN_OLDER)
    await page.wait_for_function(
        f"document.querySelector('#page-number').textContent !== {number!r}"
    )
    return before, await shown_ids(page)


async def test_an_order_is_found_by_its_first_characters_and_opened(page: Any, api: Api) -> None:
    user, item = await api.new_user(), await api.new_item()
    order = await api.buy(user, item)

    await find(page, "order", order[:8])

    await page.wait_for_selector(f"#order-rows tr[data-order-id='{order}']")
    await page.wait_for_selector(f"#timeline-title:has-text('order {order}')")
    assert await shown_ids(page) == [order]
    assert "begins with" in await page.inner_text("#orders-title")
    time_shown = await page.inner_text(f"#order-rows tr[data-order-id='{order}'] td:first-child")
    assert re.search(r"\d{1,2}:\d{2}:\d{2}", time_shown), time_shown
    await page.screenshot(path=str(ARTIFACTS / "monitor-found.png"), full_page=True)


async def test_a_whole_id_in_capitals_is_found_and_nonsense_is_told(page: Any, api: Api) -> None:
    user, item = await api.new_user(), await api.new_item()
    order = await api.buy(user, item)

    await find(page, "order", order.upper())
    await page.wait_for_selector(f"#timeline-title:has-text('order {order}')")

    await find(page, "order", "not-an-id")
    await page.wait_for_selector("#search-result:has-text('hex digits')")


async def test_a_players_orders_come_a_page_at_a_time_each_once(page: Any, api: Api) -> None:
    user, item = await api.new_user(), await api.new_item()
    placed = [await api.buy(user, item) for _ in range(2 * PAGE_SIZE + 10)]

    await find(page, "player", user)
    await page.wait_for_function(
        f"document.querySelectorAll('#order-rows tr').length === {PAGE_SIZE}"
    )
    first, second = await next_page(page)
    _, third = await next_page(page)

    assert [len(first), len(second), len(third)] == [PAGE_SIZE, PAGE_SIZE, 10]
    assert first + second + third == list(reversed(placed))  # newest first, each once
    assert await page.locator("#older").is_disabled()
    await page.click("#newer")
    await page.wait_for_function(
        f"document.querySelector('#order-rows tr')?.dataset.orderId === {second[0]!r}"
    )
    assert await shown_ids(page) == second
    assert await page.locator("#filters button[data-status='CANCELLED']").is_disabled()


async def test_paging_the_latest_while_orders_arrive_shows_each_once(page: Any, api: Api) -> None:
    user, item = await api.new_user(), await api.new_item()
    for _ in range(2 * PAGE_SIZE):
        await api.buy(user, item)
    await page.click("#search-clear")
    await page.wait_for_function("!document.querySelector('#older').disabled")
    arriving = asyncio.create_task(place(api, user, item, 40))
    try:
        first, later = await next_page(page)
        seen = [first, later]
        while not await page.locator("#older").is_disabled():
            seen.append((await next_page(page))[1])
    finally:
        await arriving

    every = [order for shown in seen for order in shown]
    assert len(every) == len(set(every)), "an order was shown on two pages"
    assert len(seen) >= 3


async def place(api: Api, user: str, item: str, count: int) -> None:
    for _ in range(count):
        await api.buy(user, item)


FAILURES = {
    "poor": ("user", "user: balance too low: has 500, needs 1000", ["order"]),
    "bag": ("inventory", "inventory: bag is full: 20 free slots, 21 needed", ["user", "order"]),
    "stock": (
        "item",
        "item: out of stock: 1 left, 2 requested",
        ["inventory", "user", "order"],
    ),
    "declined": ("payment", f"payment: {OVER_THE_LIMIT}", ["item", "inventory", "user", "order"]),
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_each_failure_button_ends_in_its_compensated_timeline(
    page: Any, failure: str
) -> None:
    refuser, reason, undone = FAILURES[failure]

    await page.click(f"#failures button[data-failure='{failure}']")

    await page.wait_for_selector("#timeline-status.status-CANCELLED", timeout=SAGA_TIMEOUT_MS)
    await page.wait_for_selector("#timeline-steps .chip.compensation:has-text('order.cancelled')")
    refused = page.locator("#timeline-steps .chip.failure")
    assert await refused.count() == 1
    assert await refused.get_attribute("data-service") == refuser
    assert await page.locator("#timeline-steps .reason").all_text_contents() == [reason]
    compensations = page.locator("#timeline-steps .chip.compensation")
    lanes = await compensations.evaluate_all("cs => cs.map(c => c.dataset.service)")
    assert lanes == undone  # newest step first, the order last
    assert await page.inner_text("#timeline-status") == f"CANCELLED: {reason}"
    assert "order " in await page.inner_text("#failure-result")
    await page.screenshot(path=str(ARTIFACTS / f"monitor-failure-{failure}.png"), full_page=True)
