"""Unrestricted resource consumption, refused: a caller past its rate limit gets 429 while
another goes on, a list never answers more than a page, a body sent a byte at a time is cut
with 408, and the audit cannot be asked in a loop to load every store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import sagashop.audit
from sagashop.config import Settings
from sagashop.http.app import LINGER
from tests.support import BUSES, Shop, eventually, make_settings, on_bus, on_systems, started_shop

# Limits are the front door's, so the database does not matter; the hostile tests run on both
# transports all the same.
ON_EACH_TRANSPORT = on_systems("sqlite-pubsub", "sqlite-streams")

BODY_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def system_settings() -> dict[str, Any]:
    return {"body_timeout": BODY_TIMEOUT}


# Tests on a system of their own come first: a process opens one Store at a time, and the
# module's system (`shop`) stays open from its first test to the end of the module.


@pytest.fixture(
    params=[
        pytest.param((store, bus.values[0]), id=f"{store}-{bus.id}", marks=bus.marks)
        for store in ("memory", "redis")
        for bus in BUSES
    ]
)
async def limited(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> AsyncIterator[Shop]:
    """A system that lets each caller make 10 requests a minute, counted in memory or in
    Redis, on each transport."""
    store, bus = request.param
    settings = make_settings(
        redis_url, tmp_path, None, bus=bus, rate_limit="10/minute", rate_limit_store=store
    )
    async with on_bus(settings), started_shop(settings) as shop:
        yield shop


async def get_from(shop: Shop, source: str, path: str) -> aiohttp.ClientResponse:
    """A GET from the address `source` (any 127.x.y.z is this machine): another caller."""
    url = shop.client.make_url(path)  # type: ignore[attr-defined]
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session, session.get(url) as answer:
        await answer.read()
        return answer


async def test_a_burst_over_the_limit_is_refused_and_another_caller_is_not(
    limited: Shop,
) -> None:
    statuses = [(await get_from(limited, "127.0.0.2", "/items")).status for _ in range(10)]
    refused = await get_from(limited, "127.0.0.2", "/items")
    other = await get_from(limited, "127.0.0.3", "/items")
    probe = await get_from(limited, "127.0.0.2", "/healthz")

    assert statuses == [200] * 10
    assert refused.status == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert other.status == 200
    assert probe.status == 200, "a probe has a limit of its own: a caller past theirs is probed"


async def test_as_the_readme_starts_it_a_developer_loopback_without_auth_is_not_limited(
    redis_url: str, tmp_path: Path
) -> None:
    """The README's `python run.py`: the bench, the monitor page and the original project's
    clients all come from one address, as fast as they can; 429s there only get in the way."""
    default = Settings().rate_limit
    settings = make_settings(redis_url, tmp_path, None, rate_limit=default)
    async with started_shop(settings) as shop:
        statuses = [(await get_from(shop, "127.0.0.2", "/items")).status for _ in range(120)]
    assert statuses == [200] * 120


async def test_in_redis_the_counts_are_under_the_namespace(limited: Shop) -> None:
    await limited.call("GET", "/items")
    assert limited.node is not None
    settings, redis = limited.node.settings, limited.node.redis
    counted = await redis.keys(f"{settings.namespace}:ratelimit*")
    assert bool(counted) == (settings.rate_limit_store == "redis")


async def test_the_refusal_is_the_usual_error_body(limited: Shop) -> None:
    for _ in range(10):
        await limited.call("GET", "/items")
    status, body = await limited.call("GET", "/items")
    assert status == 429
    assert body["error"]["code"] == "too_many_requests"


HEAD_TIMEOUT = 2.0


@pytest.fixture
async def impatient(redis_url: str, tmp_path: Path) -> AsyncIterator[Shop]:
    """A system that gives a request's head 2 s to arrive."""
    settings = make_settings(redis_url, tmp_path, None, head_timeout=HEAD_TIMEOUT)
    async with started_shop(settings) as shop:
        yield shop


async def test_a_head_sent_a_byte_at_a_time_is_cut(impatient: Shop) -> None:
    server = impatient.client.server  # type: ignore[attr-defined]
    reader, writer = await asyncio.open_connection(server.host, server.port)
    head = f"GET /items HTTP/1.1\r\nHost: {server.host}\r\nX-Slow: {'a' * 40}\r\n\r\n"
    sender = asyncio.create_task(send_slowly(writer, head.encode(), every=0.5))
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(HEAD_TIMEOUT + 5):
            answer = await reader.read()  # nothing, until the server closes
    finally:
        sender.cancel()
        writer.close()
    closed_after = loop.time() - started
    assert answer == b""
    assert closed_after < HEAD_TIMEOUT + 1, f"the connection lasted {closed_after:.1f} s"


async def send_slowly(writer: asyncio.StreamWriter, body: bytes, every: float) -> None:
    """The slow client itself: one byte of the body every `every` seconds."""
    for byte in body:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(every)


@ON_EACH_TRANSPORT
async def test_a_body_sent_a_byte_at_a_time_is_cut_with_408(shop: Shop) -> None:
    server = shop.client.server  # type: ignore[attr-defined]
    reader, writer = await asyncio.open_connection(server.host, server.port)
    body = b'{"username": "slow", "balance": 1}'
    head = (
        f"POST /users HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode())
    sender = asyncio.create_task(send_slowly(writer, body, every=1.5))
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(BODY_TIMEOUT + LINGER + 3):
            answer = await reader.read()  # everything, until the server closes
    finally:
        sender.cancel()
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer
    closed_after = loop.time() - started
    assert closed_after < BODY_TIMEOUT + LINGER + 1, f"the connection lasted {closed_after:.1f} s"


@ON_EACH_TRANSPORT
async def test_the_stores_see_one_audit_however_many_ask_and_no_answer_is_stale(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    looks = 0
    gather = sagashop.audit.gather

    async def counted(*args: Any) -> Any:
        nonlocal looks
        looks += 1
        return await gather(*args)

    monkeypatch.setattr(sagashop.audit, "gather", counted)
    together = await asyncio.gather(*(shop.ok("GET", "/audit") for _ in range(20)))
    looks_together = looks
    await shop.new_user()
    after = await shop.ok("GET", "/audit")

    assert looks_together == 1, f"the stores were read {looks_together} times for 20 audits"
    assert all(report == together[0] for report in together)
    assert after["counts"]["users"] == together[0]["counts"]["users"] + 1, "a stale report"
    assert looks == 2


LISTS = [
    "/items",
    "/orders",
    "/dead-letters",
    "/user/{user}/orders",
    "/user/{user}/notifications",
]


@pytest.fixture(scope="module")
async def broke(shop: Shop) -> str:
    """A user whose every order is refused at once (no money): orders cost no stock."""
    return await shop.new_user(balance=0)


@ON_EACH_TRANSPORT
@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    ("query", "expected", "field"),
    [
        ({"limit": 100000}, 400, "limit"),
        ({"limit": 0}, 400, "limit"),
        ({"cursor": "!"}, 400, "cursor"),  # not base64url
        ({"cursor": "bm9wZQ"}, 404, "cursor"),  # "nope": names no page
        ({"cursor": "W10"}, 404, "cursor"),  # "[]": no position of any list
    ],
)
async def test_a_page_too_long_or_a_made_up_cursor_is_refused_naming_the_field(
    shop: Shop, broke: str, path: str, query: dict[str, Any], expected: int, field: str
) -> None:
    status, body = await shop.call("GET", path.format(user=broke), params=query)
    assert status == expected, body
    assert body["error"]["field"] == field


async def place_refused_orders(shop: Shop, user: str, item: str, count: int) -> set[str]:
    placed: set[str] = set()
    for start in range(0, count, 50):
        batch = await asyncio.gather(*(shop.buy(user, item) for _ in range(min(50, count - start))))
        placed |= {order["id"] for order in batch}
    return placed


async def pages(shop: Shop, path: str, key: str, **query: Any) -> list[list[dict[str, Any]]]:
    """Every page of a list, in order, following `next` from the first."""
    found = [await shop.ok("GET", path, params=query)]
    while found[-1]["next"] is not None:
        found.append(await shop.ok("GET", path, params={**query, "cursor": found[-1]["next"]}))
    return [page[key] for page in found]


@ON_EACH_TRANSPORT
async def test_500_orders_come_50_a_page_each_once_newest_first(shop: Shop, broke: str) -> None:
    item = await shop.new_item(stock=1)
    placed = await place_refused_orders(shop, broke, item, 500)

    first = await shop.ok("GET", f"/user/{broke}/orders")
    every = await pages(shop, f"/user/{broke}/orders", "orders")

    assert len(first["orders"]) == 50
    assert first["next"] is not None
    assert [len(page) for page in every] == [50] * 10
    ids = [order["id"] for page in every for order in page]
    assert len(set(ids)) == 500
    assert set(ids) == placed
    times = [order["createdAt"] for page in every for order in page]
    assert times == sorted(times, reverse=True)


@ON_EACH_TRANSPORT
async def test_the_monitor_list_and_notifications_page_on(shop: Shop, broke: str) -> None:
    await shop.settle_users([broke])
    told = await eventually(
        lambda: shop.notifications(broke), lambda found: len(found) >= 500, within=60
    )
    every = await pages(shop, f"/user/{broke}/notifications", "notifications", limit=200)
    latest = await pages(shop, "/orders", "orders", status="CANCELLED", limit=120)

    assert [len(page) for page in every] == [200, 200, len(told) - 400]
    assert len({note["id"] for page in every for note in page}) == len(told)
    cancelled = [order["id"] for page in latest for order in page]
    assert len(cancelled) == len(set(cancelled)) >= 500
    assert all(len(page) == 120 for page in latest[:-1])


@ON_EACH_TRANSPORT
async def test_the_catalogue_pages_on_without_repeating_or_missing_an_item(shop: Shop) -> None:
    added = {await shop.new_item(name=f"page item {n}") for n in range(7)}
    every = await pages(shop, "/items", "items", limit=3)
    ids = [item["id"] for page in every for item in page]
    assert len(ids) == len(set(ids))
    assert added <= set(ids)
    assert all(len(page) == 3 for page in every[:-1])
