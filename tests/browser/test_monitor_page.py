"""The monitor page in a real headless Chromium (Debian's `chromium`, driven by Playwright through
`executable_path`): it loads cleanly, a purchase started from it reaches COMPLETED, and a forced
payment failure shows the compensation chain. Screenshots go to `test-artifacts/`."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.browser.chromium import ARTIFACTS

SAGA_TIMEOUT_MS = 30_000


async def buy_from_the_page(page: Any) -> None:
    await page.click("#new-player")
    await page.wait_for_function("document.querySelector('#player').options.length > 0")
    await page.wait_for_function("document.querySelector('#item').options.length > 0")
    await page.click("#buy-button")
    await page.wait_for_selector("#timeline-title:has-text('order ')")


async def set_failure_rate(page: Any, percent: int) -> None:
    await page.eval_on_selector(
        "#rate", f"(s) => {{ s.value = {percent}; s.dispatchEvent(new Event('input')) }}"
    )
    await page.click("#rate-button")
    await page.wait_for_selector(f"#rate-result:has-text('decline {percent}%')")


async def lanes_of(page: Any, chips: str) -> list[str]:
    """The service lane of each chip, top to bottom."""
    found: list[str] = await page.locator(chips).evaluate_all(
        "cs => cs.map(c => c.dataset.service)"
    )
    return found


async def test_the_page_loads_live_with_its_counters(page: Any) -> None:
    await page.wait_for_function(
        "/^[0-9]+$/.test(document.querySelector('#count-completed').textContent)"
    )
    assert await page.title() == "sagashop · saga monitor"
    assert await page.locator("#lanes").is_visible()


async def test_a_purchase_started_from_the_page_completes(page: Any) -> None:
    await buy_from_the_page(page)

    await page.wait_for_selector("#timeline-status.status-COMPLETED", timeout=SAGA_TIMEOUT_MS)
    await page.wait_for_selector("#timeline-steps .chip[data-service='notification']")
    services = await lanes_of(page, "#timeline-steps .chip")
    assert set(services) == {"order", "user", "inventory", "item", "payment", "notification"}
    assert await page.locator("#timeline-steps .chip.compensation").count() == 0
    await page.wait_for_function("state.steps.length > 0")  # the live lanes drew its steps
    await page.screenshot(path=str(ARTIFACTS / "monitor-completed.png"), full_page=True)


async def test_a_declined_payment_shows_the_compensation_chain(page: Any) -> None:
    await set_failure_rate(page, 100)
    try:
        await buy_from_the_page(page)
        await page.wait_for_selector("#timeline-status.status-CANCELLED", timeout=SAGA_TIMEOUT_MS)
        await page.wait_for_selector(
            "#timeline-steps .chip.compensation:has-text('order.cancelled')"
        )
    finally:
        await set_failure_rate(page, 0)

    refused = page.locator("#timeline-steps .chip.failure")
    assert await refused.count() == 1
    assert "payment.rejected" in await refused.inner_text()
    reason = page.locator("#timeline-steps .reason")
    assert await reason.all_text_contents() == ["payment: declined by the mock provider"]
    undone = await lanes_of(page, "#timeline-steps .chip.compensation")
    assert undone == ["item", "inventory", "user", "order"]  # newest step first, then the order
    await page.click("#filters button[data-status='CANCELLED']")
    await page.wait_for_selector("#order-rows tr .status-CANCELLED")
    await page.wait_for_function(
        "Number(document.querySelector('#count-cancelled').textContent) > 0"
    )
    shot = await page.screenshot(path=str(ARTIFACTS / "monitor-compensation.png"), full_page=True)
    assert len(shot) > 10_000


TOO_MANY = json.dumps({"error": {"code": "too_many_requests", "message": "too many requests"}})


async def test_told_too_many_requests_the_page_backs_off_and_the_error_goes_once_it_clears(
    browser: Any, server: str
) -> None:
    """A server with a rate limit answers the counters 429 with Retry-After: the page waits that
    long before asking again (not every 2 s), and drops the error once the counters load."""
    context = await browser.new_context(bypass_csp=True)
    page = await context.new_page()
    asked: list[float] = []
    refusing = True

    async def summary(route: Any) -> None:
        asked.append(time.monotonic())
        if refusing:
            headers = {"Retry-After": "3", "Content-Type": "application/json"}
            await route.fulfill(status=429, headers=headers, body=TOO_MANY)
        else:
            await route.continue_()

    await page.route("**/summary", summary)
    await page.goto(server)
    await page.wait_for_selector("#connection:has-text('error: too many requests')")
    deadline = time.monotonic() + 10
    while len(asked) < 2 and time.monotonic() < deadline:
        await page.wait_for_timeout(100)
    assert len(asked) >= 2, "the page never asked again"
    assert asked[1] - asked[0] >= 2.9, f"asked again before Retry-After: {asked}"
    refusing = False
    await page.wait_for_selector("#connection[data-state='live']:has-text('live')", timeout=10_000)
    await page.screenshot(path=str(ARTIFACTS / "monitor-after-429.png"))
    await context.close()
