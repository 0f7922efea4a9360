"""The bench against a real system: its figures agree with what the system did, and it names
the invariants a run broke. No timing is asserted: the figures of speed are the bench's output,
not its verdict."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiormq.exceptions import ChannelNotFoundEntity
from rich.progress import Progress

from sagashop.actors import SERVICE_NAMES
from sagashop.bench.load import LOST, BenchError, Buyer, Outcome, drive
from sagashop.bench.run import Clients, bench, measure, require_empty
from sagashop.bench.scenarios import make_plan
from sagashop.bench.system import started_system
from sagashop.config import Settings
from sagashop.transport import Channels
from tests.support import AMQP_URL, Shop, amqp, on_bus, on_systems, waiting

DEADLINE = 30.0
DECLINED = "payment: declined by the mock provider"
# The bench is a client: the database and the transport do not matter to it.
on_one_system = on_systems("sqlite-pubsub")


def quiet() -> Progress:
    return Progress(disable=True)


def front_door(shop: Shop) -> str:
    assert isinstance(shop.client, TestClient)
    return str(shop.client.make_url("")).rstrip("/")


@on_one_system
async def test_uniform_purchases_end_and_are_counted_by_how_they_ended(shop: Shop) -> None:
    await shop.set_payment_failure_rate(0.5)
    try:
        plan = make_plan("uniform", purchases=30, concurrency=10)
        run = await measure(plan, [front_door(shop)], DEADLINE, quiet())
    finally:
        await shop.set_payment_failure_rate(0.0)

    assert run.failures() == []
    assert run.statuses["COMPLETED"] + run.statuses["CANCELLED"] == 30
    assert run.statuses["COMPLETED"] > 0
    assert run.reasons == {DECLINED: run.statuses["CANCELLED"]}


@on_one_system
async def test_clients_that_poll_see_every_purchase_end(shop: Shop) -> None:
    plan = make_plan("uniform", purchases=20, concurrency=5)

    run = await measure(plan, [front_door(shop)], DEADLINE, quiet(), Clients(poll_every=0.02))

    assert run.failures() == []
    assert run.statuses == {"COMPLETED": 20}


@on_one_system
async def test_clients_that_poll_the_order_as_the_original_ones_do_see_every_purchase_end(
    shop: Shop,
) -> None:
    plan = make_plan("uniform", purchases=10, concurrency=5)
    clients = Clients(poll_every=0.02, read_order=True)

    run = await measure(plan, [front_door(shop)], DEADLINE, quiet(), clients)

    assert run.failures() == []
    assert run.statuses == {"COMPLETED": 10}
    assert run.cpu.servers is not None
    assert run.cpu.servers > 0
    assert run.cpu.redis is None  # the bench was not told which Redis


@on_one_system
async def test_an_order_with_no_final_status_by_its_deadline_counts_as_lost(shop: Shop) -> None:
    order = {"userId": await shop.new_user(), "itemId": await shop.new_item(), "quantity": 1}
    async with aiohttp.ClientSession() as http:
        outcomes, _seconds = await drive(
            Buyer(http, 1e-6), [front_door(shop)], [order] * 3, 3, lambda _outcome: None
        )
    assert outcomes == [Outcome(LOST)] * 3


@on_one_system
async def test_a_system_that_holds_data_already_is_not_benched(shop: Shop) -> None:
    await shop.new_user()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(BenchError, match="already holds"):
            await require_empty(http, front_door(shop))


async def test_a_flash_sale_on_a_system_the_bench_starts_sells_exactly_its_stock() -> None:
    plan = make_plan("flash-sale", purchases=24, users=6, stock=4, concurrency=8)
    settings = Settings(payment_failure_rate=0.0, log_level="WARNING")

    run = await bench(plan, replace(settings, processes=2), [], DEADLINE, quiet())

    assert run.processes == 2
    assert run.failures() == []
    assert run.statuses == {"COMPLETED": 4, "CANCELLED": 20}
    assert run.reasons == {"item: out of stock": 20}
    assert run.audit["counts"] == {
        "users": 6,
        "items": 1,
        "orders": 24,
        "settled": 24,
        "in flight": 0,
    }
    assert (run.vitals.peak_rss_bytes or 0) > 0
    assert run.cpu.servers is not None
    assert run.cpu.servers > 0
    assert run.cpu.redis is not None, "the bench's own Redis is measured (/proc: in 10 ms ticks)"
    p50, p95, p99 = run.latency_ms.values()
    assert None not in (p50, p95, p99)
    assert 0 < p50 <= p95 <= p99  # type: ignore[operator]


@pytest.mark.rabbitmq
async def test_a_system_the_bench_starts_on_rabbitmq_leaves_nothing_on_the_broker(
    tmp_path: Path,
) -> None:
    """Its queues are durable: a bench run that left them would leave seven on the broker each
    time. The broker's CPU is read from the process `--broker-pid` names (here, this one)."""
    settings = Settings(
        bus="rabbitmq",
        amqp_url=AMQP_URL,
        namespace=f"bench-test-{uuid.uuid4().hex[:8]}",
        payment_failure_rate=0.0,
        log_level="WARNING",
        processes=2,
    )
    plan = make_plan("uniform", purchases=20, concurrency=5)
    async with on_bus(settings), started_system(settings, tmp_path) as system:
        namespace = Channels(system.server.settings.namespace)
        run = await measure(
            plan, system.urls, DEADLINE, quiet(), system=system, broker_pid=os.getpid()
        )
        assert run.failures() == []
        assert (run.cpu.broker or 0) > 0
    async with amqp() as connection:
        for queue in [namespace.queue(service) for service in SERVICE_NAMES]:
            with pytest.raises(ChannelNotFoundEntity):
                await waiting(connection, queue)


@pytest.fixture
async def older_front_door(tmp_path: Path) -> AsyncIterator[tuple[str, list[str]]]:
    """A front door as it was before `/orders/{id}/status` and `?wait=`: every read of the
    order answers at once; the order has ended by the third."""
    reads: list[str] = []
    app = web.Application()

    async def place(_request: web.Request) -> web.Response:
        return web.json_response({"id": "o1", "status": "PENDING"}, status=201)

    async def read(request: web.Request) -> web.Response:
        reads.append(request.path)
        status = "COMPLETED" if len(reads) >= 3 else "PENDING"
        return web.json_response({"id": "o1", "status": status, "failureReason": None})

    async def unrouted(request: web.Request) -> web.Response:
        reads.append(request.path)
        message = f"no such endpoint: GET {request.path}"
        return web.json_response({"error": {"code": "not_found", "message": message}}, status=404)

    app.router.add_post("/orders", place)
    app.router.add_get("/orders/{order_id}", read)
    app.router.add_get("/orders/{order_id}/status", unrouted)
    async with TestServer(app) as server:
        yield str(server.make_url("")).rstrip("/"), reads


async def test_an_older_front_door_is_read_through_the_whole_order(
    older_front_door: tuple[str, list[str]],
) -> None:
    url, reads = older_front_door
    async with aiohttp.ClientSession() as http:
        buyer = Buyer(http, DEADLINE)
        outcome = await buyer.buy(url, {"userId": "u", "itemId": "i", "quantity": 1})

    assert (outcome.status, outcome.errors) == ("COMPLETED", ())
    assert buyer.whole_order
    assert reads == ["/orders/o1/status", "/orders/o1", "/orders/o1"]
