"""What the monitor's search and failure buttons ask of the API: orders found by the first
characters of their id (`GET /orders?idPrefix=`, a range of the id's index on both databases),
page by page, and the payment mock declining a charge past its card limit and nobody else's."""

from __future__ import annotations

from typing import Any

import pytest

from sagashop.actors.payment import CARD_LIMIT, OVER_THE_LIMIT
from tests.support import Shop, on_systems

pytestmark = on_systems("sqlite-pubsub", "postgres-pubsub")


async def ids_found(shop: Shop, prefix: str, **query: Any) -> list[str]:
    """Every order the search finds, following `next` to the last page."""
    found: list[str] = []
    params = {"idPrefix": prefix, **query}
    while True:
        page = await shop.ok("GET", "/orders", params=params)
        found += [order["id"] for order in page["orders"]]
        if page["next"] is None:
            return found
        params = {**params, "cursor": page["next"]}


async def test_an_order_is_found_by_its_whole_id_or_its_first_characters(shop: Shop) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    order = (await shop.buy(user, item))["id"]

    assert await ids_found(shop, order) == [order]
    assert order in await ids_found(shop, order[:8])
    assert order in await ids_found(shop, order[:14].upper())  # "1234abcd-56AB": dash and case
    other = order[:7] + ("0" if order[7] != "0" else "1")
    assert order not in await ids_found(shop, other)


async def test_a_search_pages_through_its_matches_each_once_in_id_order(shop: Shop) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    placed = [(await shop.buy(user, item))["id"] for _ in range(12)]
    every = [order["id"] for order in (await shop.ok("GET", "/orders?limit=200"))["orders"]]
    assert len(every) < 200, "the whole list, to know what the search should find"
    prefix = placed[0][0]
    expected = sorted(o for o in every if o.startswith(prefix))

    one_at_a_time = await ids_found(shop, prefix, limit=1)

    assert one_at_a_time == expected
    assert placed[0] in one_at_a_time


async def test_a_search_with_a_status_finds_only_orders_of_that_status(shop: Shop) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    order = (await shop.buy(user, item))["id"]
    await shop.ok("GET", f"/orders/{order}/status?wait=30")

    assert await ids_found(shop, order, status="COMPLETED") == [order]
    assert await ids_found(shop, order, status="CANCELLED") == []


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "xyz",
        "123456789",
        "12345678-12345",
        "12345678--",
        "12345678-1234-1234-1234-1234567890123",
    ],
)
async def test_what_is_not_the_beginning_of_an_id_is_refused(shop: Shop, prefix: str) -> None:
    status, body = await shop.call("GET", "/orders", params={"idPrefix": prefix})

    assert status == 400, body
    assert body["error"]["field"] == "idPrefix"


async def test_the_latest_list_cursor_names_no_page_of_a_search(shop: Shop) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    for _ in range(2):
        await shop.buy(user, item)
    latest = await shop.ok("GET", "/orders?limit=1")

    status, body = await shop.call(
        "GET", "/orders", params={"idPrefix": "0", "cursor": latest["next"]}
    )

    assert (status, body["error"]["field"]) == (404, "cursor")


async def test_a_charge_past_the_card_limit_is_declined_and_nobody_else(shop: Shop) -> None:
    """The monitor's "a payment declined": no control, no rate changed, one purchase only."""
    rich, other = await shop.new_user(balance=10**12), await shop.new_user()
    dear, cheap = await shop.new_item(price=CARD_LIMIT + 1), await shop.new_item(stock=10)

    declined = await shop.settle((await shop.buy(rich, dear))["id"])
    paid = await shop.settle((await shop.buy(other, cheap))["id"])

    assert declined["status"] == "CANCELLED"
    assert declined["failureReason"] == f"payment: {OVER_THE_LIMIT}"
    assert await shop.balance(rich) == 10**12
    assert paid["status"] == "COMPLETED"
    assert (await shop.ok("GET", "/payments/failure-rate"))["failureRate"] == 0.0
    assert await shop.stock(cheap) == 9
