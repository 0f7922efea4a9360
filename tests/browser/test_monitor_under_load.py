"""The live lanes in Chromium while purchases pour in: crowded bins are drawn as bars of steps
per second, refusals stay marks, and clicking a refusal mark opens that mark's order, not
another's under or near it (as it once did: the nearest step's centre, recomputed at the
click on a clock estimate each batch had moved, was often a completed order's hidden dot)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sagashop.actors.payment import CARD_LIMIT, OVER_THE_LIMIT
from tests.browser.chromium import ARTIFACTS
from tests.browser.conftest import Api

BUYERS = 20
DECLINED_EVERY = 150
CLICKS = 5
BAG_SLOTS = 20

CLICK_A_REFUSAL = """(opened) => {
  // Click the newest refusal mark drawn with no other refusal within two hit boxes of it, of an
  // order not opened yet (a click on it can mean only its order), at its centre on screen, in
  // the same task that found it: the test's own loop runs the loaded server and may answer
  // late, when the lanes have moved on. Answer whose mark it was, and what was around it.
  const box = canvas.getBoundingClientRect();
  const refusals = state.drawn.filter((m) => m.kind === "failure" && m.x > LABEL_WIDTH + 20);
  const alone = refusals.filter((m) => refusals.every(
    (o) => o === m || Math.abs(o.x - m.x) > 2 * HIT || Math.abs(o.y - m.y) > 2 * HIT));
  const mark = alone.filter((m) => !opened.includes(m.orderId)).at(-1);
  if (!mark) return null;
  const crowded = [...state.bins.keys()].some(
    (key) => SERVICES.some((_, lane) => isBar(lane, key)));
  const counts = state.bins.get(Math.floor(mark.at / BIN_MS));
  const near = counts[mark.lane * KINDS.length];  // other orders' charges in its half second
  if (!crowded) return null;
  const clientX = box.left + mark.x * (box.width / canvas.width);
  const clientY = box.top + mark.y * (box.height / canvas.height);
  canvas.dispatchEvent(new MouseEvent("click", { clientX, clientY, bubbles: true }));
  return { orderId: mark.orderId, near };
}"""


async def readme_picture(page: Any) -> None:
    """The page down to the opened timeline, as the README shows it (docs/monitor.png is this
    picture, copied)."""
    box = await page.locator("#timeline").bounding_box()
    clip = {"x": 0, "y": 0, "width": 1280, "height": box["y"] + box["height"] + 16}
    await page.screenshot(path=str(ARTIFACTS / "monitor-readme.png"), clip=clip, full_page=True)


async def load(api: Api, stop: asyncio.Event) -> list[str]:
    """Purchases from BUYERS clients until `stop`; every DECLINED_EVERY-th is one player's,
    past the payment mock's card limit, so declined: refusals among many completed orders'
    steps. A payer buys BAG_SLOTS times, then a new one does (a full bag would refuse in the
    inventory); the declined player's slots are given back each time."""
    item, dear = await api.new_item(), await api.new_item(price=CARD_LIMIT + 1)
    declined = await api.new_user(balance=10**12)
    placed: list[str] = []

    async def buyer() -> None:
        while not stop.is_set():
            payer = await api.new_user()
            for _ in range(BAG_SLOTS):
                if stop.is_set():
                    return
                if len(placed) % DECLINED_EVERY == 0:
                    placed.append(await api.buy(declined, dear))
                else:
                    placed.append(await api.buy(payer, item))

    await asyncio.gather(*(buyer() for _ in range(BUYERS)))
    return placed


async def test_a_click_on_a_refusal_under_load_opens_its_order(page: Any, api: Api) -> None:
    stop = asyncio.Event()
    loading = asyncio.create_task(load(api, stop))
    opened: list[tuple[str, int]] = []
    try:
        await page.wait_for_function(
            "Number(document.querySelector('#step-rate').textContent) > 100"
        )
        deadline = time.monotonic() + 60
        while len(opened) < CLICKS and time.monotonic() < deadline:
            mark = await page.evaluate(CLICK_A_REFUSAL, [order for order, _ in opened])
            if mark is None:
                await page.wait_for_timeout(200)
                continue
            await page.wait_for_selector(
                f"#timeline-title:has-text('order {mark['orderId']}')", timeout=5_000
            )
            opened.append((mark["orderId"], mark["near"]))
            if len(opened) == CLICKS:
                await page.wait_for_selector("#timeline-status.status-CANCELLED")
                await page.screenshot(
                    path=str(ARTIFACTS / "monitor-under-load.png"), full_page=True
                )
                await readme_picture(page)
            await page.wait_for_timeout(300)
    finally:
        stop.set()
        placed = await loading

    assert len(opened) == CLICKS, f"only {len(opened)} refusals could be clicked"
    assert len({order for order, _ in opened}) == CLICKS
    assert {order for order, _ in opened} <= set(placed)
    assert any(near > 0 for _, near in opened), "no refusal had other orders' charges beside it"
    assert "a full bar is" in await page.inner_text("#bar-scale")
    reason = await page.inner_text("#timeline-status")
    assert reason == f"CANCELLED: payment: {OVER_THE_LIMIT}"
