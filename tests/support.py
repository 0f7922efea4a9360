"""Driving the real system in tests: through its HTTP API, waiting on conditions with deadlines."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import AMQPError
from aiohttp.test_utils import TestClient, TestServer

from sagashop.actors import SERVICE_NAMES, SERVICES
from sagashop.bootstrap import Node
from sagashop.chaos.postgres import NoPostgres, postgres_binaries, run_as
from sagashop.chaos.rabbitmq import NoRabbit, rabbitmq_programs
from sagashop.config import Settings
from sagashop.http import NODE, create_app
from sagashop.names import Request
from sagashop.saga import Service
from sagashop.tracing import Tracing
from sagashop.transport import TRANSPORTS, Channels
from sagashop.transport.rabbitmq import forget_namespace
from sagashop.transport.signing import BusKeys

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
TEST_BUS_KEYS = BusKeys.parse("test:sagashop-tests-bus-key-not-secret")
"""Every system under test signs its bus messages, as a real one does (with a Redis over TCP it
must), and processes a test starts get the keys in their environment."""
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
NEEDS = {"postgres": [pytest.mark.postgres], "rabbitmq": [pytest.mark.rabbitmq]}
"""The marks of a database or bus transport that needs a server of its own."""
BUSES = [pytest.param(bus, id=bus, marks=NEEDS.get(bus, [])) for bus in TRANSPORTS]
SYSTEMS = [
    pytest.param(
        (backend, bus),
        id=f"{backend}-{bus}",
        marks=[*NEEDS.get(backend, []), *NEEDS.get(bus, [])],
    )
    for bus in TRANSPORTS
    for backend in ("sqlite", "postgres")
]
"""Every database and bus transport: a scenario where both matter runs on each."""


def on_systems(*ids: str) -> pytest.MarkDecorator:
    """Run the `shop` (or `cluster_settings`) of a module or test only on these systems, for
    scenarios where the database or the transport does not matter (or only one of them does)."""
    chosen = [system for system in SYSTEMS if system.id in ids]
    assert len(chosen) == len(ids), f"unknown system among {ids}"
    return pytest.mark.parametrize("shop", chosen, indirect=True, scope="module")


def with_cluster_on(*ids: str) -> pytest.MarkDecorator:
    """`on_systems` for the processes of a cluster test."""
    chosen = [system for system in SYSTEMS if system.id in ids]
    return pytest.mark.parametrize("cluster_settings", chosen, indirect=True)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) of every operation of an OpenAPI document, a path item given
    by `$ref` (an event stream's, see `sagashop.http.openapi`) followed to its definition."""
    for path, item in document["paths"].items():
        if "$ref" in item:
            item = document["components"]["pathItems"][item["$ref"].rpartition("/")[2]]
        for method, operation in item.items():
            yield method, path, operation


T = TypeVar("T")
TERMINAL = {"COMPLETED", "CANCELLED"}


class HttpClient(Protocol):
    def request(self, method: str, path: str, **kwargs: Any) -> Any: ...


async def eventually(
    probe: Callable[[], Awaitable[T]],
    accept: Callable[[T], bool] = bool,
    within: float = 30.0,
    first_wait: float = 0.01,
    longest_wait: float = 0.5,
) -> T:
    """Probe until `accept` says yes; fail with the last value once the deadline passes.

    The wait between probes grows (by half each time, up to `longest_wait`), so a long wait
    does not hammer the system it is waiting for."""
    loop = asyncio.get_running_loop()
    deadline, wait = loop.time() + within, first_wait
    while True:
        value = await probe()
        if accept(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {within}s; last value: {value!r}")
        await asyncio.sleep(min(wait, max(0.0, deadline - loop.time())))
        wait = min(wait * 1.5, longest_wait)


def make_settings(
    redis_url: str, data_dir: Path, database_url: str | None, **overrides: Any
) -> Settings:
    """Settings for one system under test: its own namespace on the shared Redis, its own
    databases, and a payment mock that never declines unless a test says so."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "data_dir": data_dir,
        "database_url": database_url,
        "namespace": f"test-{uuid.uuid4().hex[:10]}",
        "payment_failure_rate": 0.0,
        "port": 0,
        "bus_keys": TEST_BUS_KEYS,
        "amqp_url": AMQP_URL,
        "test_controls": True,  # the payment mock's rate is set per scenario
        "rate_limit": "off",  # one address drives it all; tests/system/test_limits.py sets one
    }
    return Settings(**{**values, **overrides})


def _absent(reason: str) -> NoReturn:
    """Skip, saying why; fail instead under REQUIRE_SERVICES=1 (CI, which has PostgreSQL)."""
    reason += "; REQUIRE_SERVICES=1 makes this a failure."
    if REQUIRE_SERVICES:
        pytest.fail(reason)
    pytest.skip(reason)


async def _postgres_or_skip() -> None:
    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=3)
    except (OSError, asyncpg.PostgresError) as error:
        _absent(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({error}). "
            "Set TEST_POSTGRES_URL to test on PostgreSQL"
        )
    await connection.close()


def own_postgres_or_skip() -> None:
    """For a test that starts a PostgreSQL of its own (`OwnPostgres`): its programs are there,
    and a user to run them as."""
    try:
        postgres_binaries()
        run_as()
    except NoPostgres as error:
        _absent(f"{error}. A test starting a PostgreSQL of its own needs its server programs")


def own_rabbit_or_skip() -> None:
    """For a test that starts a RabbitMQ node of its own (`OwnRabbit`): its programs are there."""
    try:
        rabbitmq_programs()
    except NoRabbit as error:
        _absent(f"{error}. A test starting a RabbitMQ of its own needs its programs")


@asynccontextmanager
async def database(backend: str) -> AsyncIterator[str | None]:
    """A database of its own for one system: None means SQLite files in its data directory;
    for PostgreSQL, a fresh database, dropped afterwards."""
    if backend == "sqlite":
        yield None
        return
    await _postgres_or_skip()
    name = f"sagashop_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _rabbitmq_or_skip() -> None:
    try:
        connection = await aio_pika.connect(AMQP_URL, timeout=3)
    except (OSError, AMQPError, TimeoutError) as error:
        _absent(
            f"RabbitMQ is not reachable at {AMQP_URL} ({error!r}). "
            "Set TEST_AMQP_URL to test on RabbitMQ"
        )
    await connection.close()


@asynccontextmanager
async def on_bus(settings: Settings) -> AsyncIterator[Settings]:
    """The settings of one system, once its bus can be reached: for RabbitMQ, the exchanges
    and queues of its namespace are deleted afterwards (durable, they would outlive it)."""
    if settings.bus != "rabbitmq":
        yield settings
        return
    await _rabbitmq_or_skip()
    try:
        yield settings
    finally:
        await forget_namespace(AMQP_URL, Channels(settings.namespace), SERVICE_NAMES)


@asynccontextmanager
async def amqp() -> AsyncIterator[AbstractConnection]:
    """A connection of the test's own to the broker, as another process would have."""
    connection = await aio_pika.connect(AMQP_URL)
    try:
        yield connection
    finally:
        await connection.close()


async def waiting(connection: AbstractConnection, queue: str) -> int:
    """Messages ready in a queue of the broker (not those delivered and unacknowledged)."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await channel.close()


@asynccontextmanager
async def started_shop(
    settings: Settings, catalogue: Sequence[Service] = SERVICES, tracing: Tracing | None = None
) -> AsyncIterator[Shop]:
    """The real system, started in this process by the same factory `run.py` uses."""
    app = create_app(settings, catalogue, tracing)
    async with TestServer(app) as server, TestClient(server) as client:
        yield Shop(client, app[NODE])


@dataclass
class Shop:
    """The system under test. Everything goes through the HTTP API, except set-up the API does
    not offer (the payment mock's rate), which goes through `Node.ask` like any process would."""

    client: HttpClient
    node: Node | None = None

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.client.request(method, path, **kwargs) as response:
            return response.status, await response.json()

    async def ok(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        status, body = await self.call(method, path, **kwargs)
        assert status == expect, f"{method} {path} answered {status}: {body}"
        return body

    async def new_user(self, balance: int = 50_000, active: bool = True) -> str:
        body = {"username": "tester", "balance": balance, "active": active}
        return str((await self.ok("POST", "/users", 201, json=body))["id"])

    async def new_item(self, price: int = 1_000, stock: int = 100, name: str = "Test item") -> str:
        body = {"name": name, "price": price, "stock": stock}
        return str((await self.ok("POST", "/items", 201, json=body))["id"])

    async def buy(self, user: str, item: str, quantity: int = 1) -> dict[str, Any]:
        body = {"userId": user, "itemId": item, "quantity": quantity}
        order: dict[str, Any] = await self.ok("POST", "/orders", 201, json=body)
        return order

    async def order(self, order_id: str) -> dict[str, Any]:
        view: dict[str, Any] = await self.ok("GET", f"/orders/{order_id}/timeline")
        return view

    async def balance(self, user: str) -> int:
        return int((await self.ok("GET", f"/user/{user}/balance"))["balance"])

    async def every(self, path: str, key: str) -> list[dict[str, Any]]:
        """Every entry of a paged list (`key` in each page), following the cursors."""
        found: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"limit": 200}
        while True:
            page = await self.ok("GET", path, params=params)
            found += page[key]
            if page["next"] is None:
                return found
            params = {"limit": 200, "cursor": page["next"]}

    async def stock(self, item: str) -> int:
        items = await self.every("/items", "items")
        return int(next(i["stock"] for i in items if i["id"] == item))

    async def bag(self, user: str) -> dict[str, int]:
        inventory = (await self.ok("GET", f"/user/{user}/inventory"))["inventory"]
        return {row["itemId"]: row["quantity"] for row in inventory}

    async def free_slots(self, user: str) -> int:
        return int((await self.ok("GET", f"/user/{user}/inventory"))["free"])

    async def orders_of(self, user: str) -> list[dict[str, Any]]:
        return await self.every(f"/user/{user}/orders", "orders")

    async def notifications(self, user: str) -> list[dict[str, Any]]:
        return await self.every(f"/user/{user}/notifications", "notifications")

    async def set_payment_failure_rate(self, rate: float, seed: int | None = None) -> None:
        assert self.node is not None, "this shop has no node to ask"
        configure = Request.CONFIGURE_PAYMENTS
        await self.node.ask("payment", configure, {"failure_rate": rate, "seed": seed})

    async def settle(self, order_id: str, within: float = 30.0) -> dict[str, Any]:
        """The order's view once its saga is over everywhere: the order terminal, every
        reservation confirmed or given back, the user told."""
        return await eventually(lambda: self.order(order_id), is_settled, within)

    async def settle_users(
        self, users: Iterable[str], within: float = 60.0
    ) -> list[dict[str, Any]]:
        """All orders of these users, once none is still pending."""
        users = list(users)

        async def all_orders() -> list[dict[str, Any]]:
            found = await asyncio.gather(*(self.orders_of(user) for user in users))
            return [order for orders in found for order in orders]

        return await eventually(
            all_orders, lambda orders: all(o["status"] in TERMINAL for o in orders), within
        )


def is_settled(view: dict[str, Any]) -> bool:
    """Ended, owing nothing: every service confirmed or gave back its part, the user was told."""
    return view["status"] in TERMINAL and view["owes"] is None


def states(view: dict[str, Any]) -> dict[str, str | None]:
    """What each service holds for the order, by state (None: nothing recorded)."""
    return {
        service: (state or {}).get("state")
        for service, state in view["services"].items()
        if service != "notification"
    }


def emitted(view: dict[str, Any]) -> list[tuple[str, str]]:
    """The events of the order's saga in the order they happened, with who emitted each."""
    return [(step["service"], step["event"]) for step in view["steps"] if step["event"]]


@dataclass
class Ledger:
    """What a test put in (balances and stock), to check that nothing was created or destroyed."""

    balances: dict[str, int] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)

    async def add_user(self, shop: Shop, balance: int) -> str:
        user = await shop.new_user(balance=balance)
        self.balances[user] = balance
        return user

    async def add_item(self, shop: Shop, price: int, stock: int) -> str:
        item = await shop.new_item(price=price, stock=stock)
        self.stock[item] = stock
        return item

    async def assert_conserved(self, shop: Shop, orders: list[dict[str, Any]]) -> None:
        """Money and items moved only by completed orders, and every reservation was settled."""
        assert all(order["status"] in TERMINAL for order in orders)
        done = [order for order in orders if order["status"] == "COMPLETED"]
        spent = Counter[str]()
        sold = Counter[str]()
        bags: dict[str, Counter[str]] = {user: Counter() for user in self.balances}
        for order in done:
            spent[order["userId"]] += order["totalAmount"]
            sold[order["itemId"]] += order["quantity"]
            bags[order["userId"]][order["itemId"]] += order["quantity"]
        expected = {
            "balances": {user: start - spent[user] for user, start in self.balances.items()},
            "stock": {item: start - sold[item] for item, start in self.stock.items()},
            "bags": {user: dict(bag) for user, bag in bags.items()},
        }
        await eventually(lambda: self._observed(shop), lambda seen: seen == expected, within=30)

    async def _observed(self, shop: Shop) -> dict[str, Any]:
        users, items = list(self.balances), list(self.stock)
        balances = await asyncio.gather(*(shop.balance(user) for user in users))
        stocks = await asyncio.gather(*(shop.stock(item) for item in items))
        bags = await asyncio.gather(*(shop.bag(user) for user in users))
        return {
            "balances": dict(zip(users, balances, strict=True)),
            "stock": dict(zip(items, stocks, strict=True)),
            "bags": dict(zip(users, bags, strict=True)),
        }


async def run_command(*argv: str, cwd: Path) -> tuple[int, str]:
    """`run.py` in a process of its own, in a directory where nothing of the system's is."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sagashop",
        *argv,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    printed, _ = await child.communicate()
    return await child.wait(), printed.decode()
