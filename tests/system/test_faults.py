"""A handler that keeps raising kills neither its actor nor the process. It is retried a few
times, then its event becomes a dead letter; if the step could fail, its order is cancelled and
what came before is undone. Once the bug is fixed, the dead letter can be replayed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sagashop.actors import SERVICES
from sagashop.events import Event
from sagashop.events import EventName as E
from sagashop.saga import Service
from sagashop.saga.declare import StepAction
from sagashop.store.book import Book
from tests.support import (
    BACKENDS,
    Shop,
    database,
    emitted,
    eventually,
    make_settings,
    run_command,
    started_shop,
    states,
)
from tests.topology import chain_from, with_emitters

BROKEN_RESERVE: set[str] = set()
"""Items the item service's reserve step crashes on."""
BROKEN_FILL: set[str] = set()
"""Items the inventory service's fill step crashes on (after the order completed)."""


def breaking(run: StepAction, broken: set[str]) -> StepAction:
    def run_unless_broken(event: Event, book: Book) -> Event | None:
        if event.item_id in broken:
            raise RuntimeError("simulated bug")
        return run(event, book)

    return run_unless_broken


def with_a_bug(service: Service, step_name: str, broken: set[str]) -> Service:
    steps = tuple(
        replace(s, run=breaking(s.run, broken)) if s.name == step_name else s for s in service.steps
    )
    return replace(service, steps=steps)


BUGS = {"item": ("reserve", BROKEN_RESERVE), "inventory": ("fill", BROKEN_FILL)}
BUGGY_SERVICES = tuple(
    with_a_bug(service, *BUGS[service.name]) if service.name in BUGS else service
    for service in SERVICES
)


@pytest.fixture(scope="module", params=BACKENDS)
async def buggy_shop(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Shop]:
    data_dir: Path = tmp_path_factory.mktemp("data")
    settings_for = partial(make_settings, redis_url, data_dir)
    async with (
        database(request.param) as url,
        started_shop(settings_for(url), BUGGY_SERVICES) as shop,
    ):
        yield shop


async def dead_letters_of(shop: Shop, order_id: str) -> list[dict[str, Any]]:
    letters: list[dict[str, Any]] = (await shop.ok("GET", "/dead-letters"))["deadLetters"]
    return [letter for letter in letters if letter["orderId"] == order_id]


async def test_a_step_that_keeps_raising_cancels_its_order_and_compensates(
    buggy_shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    shop = buggy_shop
    user = await shop.new_user(balance=50_000)
    cursed = await shop.new_item(price=1_000, stock=10)
    BROKEN_RESERVE.add(cursed)

    with caplog.at_level(logging.WARNING):
        view = await shop.settle((await shop.buy(user, cursed, quantity=2))["id"])

    assert view["status"] == "CANCELLED"
    assert view["failureReason"] == "item failed: internal error (RuntimeError: simulated bug)"
    undoing = with_emitters(chain_from(E.ITEM_REJECTED))
    assert emitted(view)[-len(undoing) :] == undoing
    assert states(view) == {
        "user": "released",
        "inventory": "released",
        "item": None,
        "payment": None,
    }
    assert (await shop.balance(user), await shop.stock(cursed)) == (50_000, 10)
    retries = [
        r for r in caplog.records if view["id"] in r.getMessage() and "retrying" in r.getMessage()
    ]
    failures = [r for r in caplog.records if "failed for good" in r.getMessage()]
    assert len(retries) == 2, "three attempts in all"
    assert [view["id"] in r.getMessage() for r in failures] == [True]
    assert any(r.exc_info for r in failures), "the traceback is logged"
    [letter] = await dead_letters_of(shop, view["id"])
    assert (letter["service"], letter["step"], letter["failures"]) == ("item", "reserve", 1)
    assert letter["error"] == "RuntimeError: simulated bug"
    assert letter["event"]["name"] == "inventory.reserved"


async def test_a_step_that_was_closed_by_its_failure_is_not_replayed(buggy_shop: Shop) -> None:
    """The give-up cancelled the order and undid what came before it: a replay could only give
    that failure again, so it is refused, saying why, and the letter is left as it was."""
    shop = buggy_shop
    user, cursed = await shop.new_user(balance=50_000), await shop.new_item(stock=10)
    BROKEN_RESERVE.add(cursed)
    view = await shop.settle((await shop.buy(user, cursed))["id"])
    [letter] = await dead_letters_of(shop, view["id"])
    BROKEN_RESERVE.discard(cursed)
    assert letter["closedWith"] == "item.rejected"

    status, body = await shop.call("POST", f"/dead-letters/{letter['id']}/replay")

    assert (status, body["error"]["code"]) == (409, "conflict")
    assert "closed with item.rejected when given up" in body["error"]["message"]
    assert await dead_letters_of(shop, view["id"]) == [letter]
    assert (await shop.settle(view["id"]))["status"] == "CANCELLED"
    assert (await shop.balance(user), await shop.stock(cursed)) == (50_000, 10)


async def test_a_dead_letter_replayed_after_the_fix_finishes_the_saga(buggy_shop: Shop) -> None:
    shop = buggy_shop
    user, fragile = await shop.new_user(balance=50_000), await shop.new_item(stock=10)
    BROKEN_FILL.add(fragile)
    order = await shop.buy(user, fragile, quantity=3)
    [letter] = await eventually(lambda: dead_letters_of(shop, order["id"]))
    view = await shop.order(order["id"])
    assert view["status"] == "COMPLETED"
    assert states(view)["inventory"] == "reserved", "the items never reached the bag"
    assert await shop.bag(user) == {}

    BROKEN_FILL.discard(fragile)
    await shop.ok("POST", f"/dead-letters/{letter['id']}/replay", 202)

    view = await shop.settle(order["id"])
    assert states(view)["inventory"] == "confirmed"
    assert await shop.bag(user) == {fragile: 3}


async def test_the_actor_goes_on_after_a_failing_step(buggy_shop: Shop) -> None:
    shop = buggy_shop
    user = await shop.new_user(balance=50_000)
    cursed, fine = await shop.new_item(stock=10), await shop.new_item(stock=10)
    BROKEN_RESERVE.add(cursed)

    first = await shop.buy(user, cursed)
    second = await shop.buy(user, fine)

    assert (await shop.settle(first["id"]))["status"] == "CANCELLED"
    assert (await shop.settle(second["id"]))["status"] == "COMPLETED"
    assert await shop.bag(user) == {fine: 1}


@pytest.mark.parametrize("bad", ["order-x", "shipping-1", "item-", "item-1x"])
async def test_an_unknown_dead_letter_is_a_404(buggy_shop: Shop, bad: str) -> None:
    status, body = await buggy_shop.call("POST", f"/dead-letters/{bad}/replay")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_replaying_a_dead_letter_that_does_not_exist_is_a_404(buggy_shop: Shop) -> None:
    status, body = await buggy_shop.call("POST", "/dead-letters/item-999999/replay")
    assert (status, body["error"]["code"]) == (404, "not_found")


async def test_the_command_line_lists_the_dead_letters_and_replays_them_all(
    buggy_shop: Shop, tmp_path: Path
) -> None:
    shop = buggy_shop
    user, fragile = await shop.new_user(balance=50_000), await shop.new_item(stock=10)
    BROKEN_FILL.add(fragile)
    orders = [(await shop.buy(user, fragile, quantity=1))["id"] for _ in range(2)]
    letters = [
        letter
        for order_id in orders
        for letter in await eventually(lambda order_id=order_id: dead_letters_of(shop, order_id))
    ]
    door = ["--url", str(shop.client.make_url("/"))]  # type: ignore[attr-defined]

    code, listed = await run_command(
        "dead-letters", "list", "--service", "inventory", *door, cwd=tmp_path
    )
    assert code == 0, listed
    assert all(
        f"{letter['id']}  inventory fill  order {letter['orderId']}" in listed for letter in letters
    )

    BROKEN_FILL.discard(fragile)
    code, replayed = await run_command("dead-letters", "replay", "--all", *door, cwd=tmp_path)
    assert code == 0, replayed
    assert all(f"replayed {letter['id']} " in replayed for letter in letters)
    for order_id in orders:
        assert states(await shop.settle(order_id))["inventory"] == "confirmed"
    assert await shop.bag(user) == {fragile: 2}

    code, listed = await run_command("dead-letters", "list", *door, cwd=tmp_path)
    assert code == 0, listed
    assert all(f"{letter['id']} " in listed for letter in letters)
    assert listed.count(", replayed ") >= len(letters), "each is listed as replayed since"

    code, refused = await run_command(
        "dead-letters", "replay", "inventory-999999", *door, cwd=tmp_path
    )
    assert code == 2
    assert "answered 404" in refused
