"""The monitor's feed (server-sent events of every step, while someone watches) and the reads and
controls its page uses: `/summary`, `/orders`, `/payments/failure-rate`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sagashop.http.monitor import WATCHERS
from sagashop.monitor.feed import MAX_PER_FLUSH
from sagashop.monitor.watchers import STEP_FIELDS
from tests.support import Shop, eventually, on_systems

on_each_transport = on_systems("sqlite-pubsub", "sqlite-streams", "sqlite-rabbitmq")
on_one_system = on_systems("sqlite-pubsub")  # the page's reads do not depend on the transport
T = TypeVar("T")


class Stream:
    """A client of `/monitor/events`: the steps it has heard, by order."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.steps: list[dict[str, Any]] = []
        self.missed = 0

    async def read(self) -> None:
        async for line in self.response.content:
            if line.startswith(b"data: "):
                message = json.loads(line[len(b"data: ") :])
                self.steps.extend(message["steps"])
                self.missed += message["missed"]

    def of(self, order_id: str) -> list[dict[str, Any]]:
        return [step for step in self.steps if step["orderId"] == order_id]


@asynccontextmanager
async def watching(shop: Shop) -> AsyncIterator[Stream]:
    """An open stream, once the node's feed knows someone listens (it looks every second)."""
    assert shop.node is not None
    async with shop.client.request("GET", "/monitor/events") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = Stream(response)
        reading = asyncio.create_task(stream.read())
        feed = shop.node.feed
        await eventually(lambda: _now(feed.listening), within=5)
        try:
            yield stream
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)


async def _now(value: T) -> T:
    return value


async def ended(shop: Shop, order_id: str) -> dict[str, Any]:
    return await shop.ok("GET", f"/orders/{order_id}/status?wait=30")


async def watched_purchase(
    shop: Shop, status: str, last: Callable[[dict[str, Any]], bool]
) -> tuple[Stream, list[dict[str, Any]]]:
    """Buy while the feed is watched; once the order ends with `status`, wait for the feed to
    show its `last` step too (the feed lags the order), and answer the stream and its steps."""
    user, item = await shop.new_user(), await shop.new_item()
    async with watching(shop) as stream:
        order = await shop.buy(user, item)
        assert (await ended(shop, order["id"]))["status"] == status
        steps = await eventually(
            lambda: _now(stream.of(order["id"])), lambda found: any(map(last, found))
        )
    return stream, steps


@on_each_transport
async def test_the_feed_shows_every_step_of_a_purchase(shop: Shop) -> None:
    stream, steps = await watched_purchase(shop, "COMPLETED", lambda step: step["step"] == "close")

    services = {step["service"] for step in steps}
    assert services == {"order", "user", "inventory", "item", "payment", "notification"}
    assert {step["kind"] for step in steps} == {"forward"}
    assert stream.missed == 0


@on_each_transport
async def test_the_feed_draws_a_declined_payment_and_its_compensations(shop: Shop) -> None:
    await shop.set_payment_failure_rate(1.0)
    try:
        _, steps = await watched_purchase(
            shop, "CANCELLED", lambda step: step["event"] == "order.cancelled"
        )
    finally:
        await shop.set_payment_failure_rate(0.0)

    kinds = {step["event"]: step["kind"] for step in steps if step["event"]}
    assert kinds["payment.rejected"] == "failure"
    for undone in ("item.released", "inventory.released", "balance.released", "order.cancelled"):
        assert kinds[undone] == "compensation", kinds
    rejected = next(step for step in steps if step["event"] == "payment.rejected")
    assert rejected["reason"] == "payment: declined by the mock provider"


@on_one_system
async def test_a_closed_page_leaves_nothing_behind(shop: Shop) -> None:
    """aiohttp does not cancel a handler whose client went away: the stream must notice."""
    assert shop.node is not None
    watchers = shop.client.app[WATCHERS]  # type: ignore[attr-defined]
    async with watching(shop):
        # the stream's headers go before it joins (and the feed may still see the last page)
        await eventually(lambda: _now(len(watchers)), lambda count: count == 1, within=5)
    await eventually(lambda: _now(len(watchers)), lambda count: count == 0, within=5)
    channel = shop.node.channels.monitor()
    listeners = await eventually(
        lambda: shop.node.redis.pubsub_numsub(channel),  # type: ignore[union-attr]
        lambda found: found[0][1] == 0,
        within=5,
    )
    assert listeners == [(channel, 0)]


@on_one_system
async def test_what_is_not_a_monitor_message_never_reaches_a_page(shop: Shop) -> None:
    """Anyone who reaches Redis may publish on the channel: what is unsigned or malformed is
    dropped, and the stream goes on (tests/system/test_hostile_monitor.py: signed but
    malformed, or signed with a key this system does not know)."""
    assert shop.node is not None
    channel = shop.node.channels.monitor()
    step = dict.fromkeys(STEP_FIELDS, "x")
    good = {"node": "test", "steps": [step], "missed": 0}
    async with watching(shop) as stream:
        for bad in (
            "[" * 100_000,
            "not json",
            '{"steps": []}\ndata: {"steps": [{"orderId": "injected"}]}',
            '{"steps": "no list"}',
        ):
            await shop.node.redis.publish(channel, bad)
        await shop.node.redis.publish(channel, shop.node.signer.sign(channel, json.dumps(good)))
        await eventually(lambda: _now(stream.of("x")), within=5)

    assert stream.of("injected") == []
    assert stream.steps[-1]["orderId"] == "x"


@on_one_system
async def test_a_flood_of_steps_is_counted_not_sent(shop: Shop) -> None:
    """Past `MAX_PER_FLUSH` steps in a quarter second, the page is told how many it missed."""
    assert shop.node is not None
    feed = shop.node.feed
    async with watching(shop) as stream:
        for n in range(MAX_PER_FLUSH + 10):
            feed.taken("order", f"flood-{n}", "create", "place_order", None)
        await eventually(lambda: _now(stream.missed), lambda missed: missed == 10, within=5)
    assert len([step for step in stream.steps if step["orderId"].startswith("flood-")]) == 500


@on_one_system
async def test_the_summary_counts_orders_by_status_and_by_who_refused(shop: Shop) -> None:
    before = await shop.ok("GET", "/summary")
    user, item = await shop.new_user(balance=1_500), await shop.new_item(price=1_000)
    done = await shop.buy(user, item)
    refused = await shop.buy(user, item)  # 500 left: the user service refuses
    assert (await ended(shop, done["id"]))["status"] == "COMPLETED"
    assert (await ended(shop, refused["id"]))["status"] == "CANCELLED"

    after = await shop.ok("GET", "/summary")

    assert after["orders"]["COMPLETED"] == before["orders"]["COMPLETED"] + 1
    assert after["orders"]["CANCELLED"] == before["orders"]["CANCELLED"] + 1
    assert after["cancelledBy"]["user"] == before["cancelledBy"].get("user", 0) + 1
    assert after["inFlight"] == after["orders"]["PENDING"]
    assert after["deadLetters"] == 0
    assert after["unavailable"] == {}


@on_one_system
async def test_the_latest_orders_come_newest_first_and_by_status(shop: Shop) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    placed = [await shop.buy(user, item) for _ in range(3)]
    for order in placed:
        await ended(shop, order["id"])

    latest = (await shop.ok("GET", "/orders?limit=3"))["orders"]
    completed = (await shop.ok("GET", "/orders?status=COMPLETED&limit=200"))["orders"]

    assert [order["id"] for order in latest] == [order["id"] for order in reversed(placed)]
    assert {order["status"] for order in completed} == {"COMPLETED"}
    assert {order["id"] for order in placed} <= {order["id"] for order in completed}


@on_one_system
async def test_bad_list_parameters_are_refused(shop: Shop) -> None:
    for query, field in (("limit=0", "limit"), ("limit=201", "limit"), ("status=LOST", "status")):
        status, body = await shop.call("GET", f"/orders?{query}")
        assert status == 400, query
        assert body["error"]["field"] == field


@on_one_system
async def test_the_payment_failure_rate_is_read_and_set(shop: Shop) -> None:
    try:
        set_to = await shop.ok("PUT", "/payments/failure-rate", json={"failureRate": 0.25})
        assert set_to == {"failureRate": 0.25, "seed": None}
        assert await shop.ok("GET", "/payments/failure-rate") == set_to
        for bad in ({"failureRate": 1.5}, {"failureRate": "all"}, {"rate": 0.5}):
            status, _ = await shop.call("PUT", "/payments/failure-rate", json=bad)
            assert status == 400, bad
        assert await shop.ok("GET", "/payments/failure-rate") == set_to
    finally:
        await shop.set_payment_failure_rate(0.0)


@on_one_system
async def test_the_page_and_its_files_are_served_from_the_package(shop: Shop) -> None:
    async with shop.client.request("GET", "/") as page:
        html = await page.text()
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "//" not in html.replace("<!doctype html>", "")  # no other site: nothing from a CDN
    for asset in ("/monitor/monitor.js", "/monitor/monitor.css"):
        async with shop.client.request("GET", asset) as response:
            assert response.status == 200, asset
