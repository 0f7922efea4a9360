"""Faults inside the system: a handler that raises, and garbage on the bus. Neither kills an
actor or the process; a failing step cancels its order and undoes what came before."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from redis.asyncio import Redis

from sagashop.actors import SERVICES, item
from sagashop.actors.runtime import Service
from sagashop.events import Event
from tests.support import BACKENDS, Shop, database, emitted, make_settings, started_shop, states

CURSED: set[str] = set()


async def reserve_unless_cursed(event: Event) -> Event:
    if event.item_id in CURSED:
        raise RuntimeError("simulated bug in the item service")
    return await item.reserve_stock(event)


def item_service_with_a_bug() -> Service:
    steps = tuple(
        replace(s, run=reserve_unless_cursed) if s.name == "reserve" else s
        for s in SERVICES["item"].steps
    )
    return replace(SERVICES["item"], steps=steps)


@pytest.fixture(scope="module", params=BACKENDS)
async def buggy_shop(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Shop]:
    data_dir: Path = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(SERVICES, "item", item_service_with_a_bug())
        async with (
            database(request.param) as url,
            started_shop(make_settings(redis_url, data_dir, url)) as shop,
        ):
            yield shop


async def test_a_step_that_keeps_raising_cancels_its_order_and_compensates(
    buggy_shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    shop = buggy_shop
    user = await shop.new_user(balance=50_000)
    cursed = await shop.new_item(price=1_000, stock=10)
    CURSED.add(cursed)

    with caplog.at_level(logging.WARNING):
        view = await shop.settle((await shop.buy(user, cursed, quantity=2))["id"])

    assert view["status"] == "CANCELLED"
    assert view["failureReason"] == (
        "item failed: internal error (RuntimeError: simulated bug in the item service)"
    )
    assert emitted(view)[-4:] == [
        ("item", "item.rejected"),
        ("inventory", "inventory.released"),
        ("user", "balance.released"),
        ("order", "order.cancelled"),
    ]
    assert states(view) == {
        "user": "released",
        "inventory": "released",
        "item": None,
        "payment": None,
    }
    assert (await shop.balance(user), await shop.stock(cursed)) == (50_000, 10)
    failures = [r for r in caplog.records if "failed for good" in r.getMessage()]
    assert [view["id"] in r.getMessage() for r in failures] == [True]
    assert any(r.exc_info for r in failures), "the traceback is logged"


async def test_the_item_actor_goes_on_after_a_failing_step(buggy_shop: Shop) -> None:
    shop = buggy_shop
    user = await shop.new_user(balance=50_000)
    cursed, fine = await shop.new_item(stock=10), await shop.new_item(stock=10)
    CURSED.add(cursed)

    first = await shop.buy(user, cursed)
    second = await shop.buy(user, fine)

    assert (await shop.settle(first["id"]))["status"] == "CANCELLED"
    assert (await shop.settle(second["id"]))["status"] == "COMPLETED"
    assert await shop.bag(user) == {fine: 1}


async def test_garbage_on_the_bus_is_logged_and_dropped(
    shop: Shop, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert shop.node is not None
    channel = f"{shop.node.settings.namespace}:event:order.created"
    garbage = [
        "not json",
        json.dumps({"delivery": "x", "event": {"name": "order.created"}}),
        json.dumps({"delivery": "y", "event": {"name": "no.such.event"}}),
    ]
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        with caplog.at_level(logging.ERROR):
            for message in garbage:
                assert await redis.publish(channel, message) == 1
            user, thing = await shop.new_user(), await shop.new_item()
            view = await shop.settle((await shop.buy(user, thing))["id"])
    finally:
        await redis.aclose()

    assert view["status"] == "COMPLETED"
    dropped = [r for r in caplog.records if "dropped a malformed message" in r.getMessage()]
    assert len(dropped) == len(garbage)
