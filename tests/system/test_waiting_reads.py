"""Reads that wait for an order's outcome instead of polling: `?wait=SECONDS` on the order and
on its status, answered when the order ends or when the wait runs out."""

from __future__ import annotations

import uuid

import pytest

from tests.support import Shop, on_systems

# Waiting is the order service's and the front door's business: one system shows it.
pytestmark = on_systems("sqlite-pubsub")


@pytest.mark.parametrize(
    "path", ["/orders/{}/status?wait=20", "/orders/{}?wait=20", "/orders/{}/timeline?wait=20"]
)
async def test_one_waiting_read_gets_the_outcome(shop: Shop, path: str) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    placed = await shop.buy(user, item)

    view = await shop.ok("GET", path.format(placed["id"]))

    assert (view["status"], view["failureReason"]) == ("COMPLETED", None)


async def test_the_status_says_why_an_order_was_cancelled(shop: Shop) -> None:
    user, item = await shop.new_user(balance=10), await shop.new_item(price=1_000)
    placed = await shop.buy(user, item)

    status = await shop.ok("GET", f"/orders/{placed['id']}/status?wait=20")

    assert status == {
        "id": placed["id"],
        "status": "CANCELLED",
        "failureReason": "user: balance too low: has 10, needs 1000",
    }


async def test_without_wait_the_status_answers_at_once(shop: Shop) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    placed = await shop.buy(user, item)

    status = await shop.ok("GET", f"/orders/{placed['id']}/status")

    assert status["id"] == placed["id"]
    assert status["status"] in {"PENDING", "COMPLETED"}


@pytest.mark.parametrize("wait", ["soon", "-1", "61", "nan", "inf", ""])
async def test_a_bad_wait_is_refused(shop: Shop, wait: str) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    placed = await shop.buy(user, item)
    for path in (
        f"/orders/{placed['id']}?wait={wait}",
        f"/orders/{placed['id']}/status?wait={wait}",
        f"/orders/{placed['id']}/timeline?wait={wait}",
    ):
        status, body = await shop.call("GET", path)
        error = body["error"]
        assert (status, error["code"], error["field"]) == (400, "invalid_request", "wait")


async def test_the_status_of_an_unknown_order_is_not_found(shop: Shop) -> None:
    status, body = await shop.call("GET", f"/orders/{uuid.uuid4()}/status?wait=5")
    assert (status, body["error"]["code"]) == (404, "not_found")
