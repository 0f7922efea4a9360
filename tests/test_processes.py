"""Several `python run.py` processes on one Redis and one set of databases.

Two processes running every service share the work (each delivery is claimed by one of them)
and the concurrency guarantees still hold. Services split over processes, with a front door
that runs none, answer every endpoint: asks and events cross processes the same way.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
import pytest

from sagashop.bootstrap import running_node
from sagashop.config import Settings
from tests.support import BACKENDS, Ledger, Shop, database, emitted, eventually, make_settings

RUN_PY = Path(__file__).resolve().parents[1] / "run.py"


@dataclass
class Process:
    name: str
    child: asyncio.subprocess.Process
    log: Path
    shop: Shop

    def log_text(self) -> str:
        return self.log.read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def run_py(
    name: str,
    services: str,
    redis_url: str,
    namespace: str,
    data_dir: Path,
    database_url: str | None,
    logs: Path,
) -> AsyncIterator[Process]:
    """`python run.py` as a child process; on the way out, Ctrl-C it and expect a clean exit."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    argv = [
        sys.executable,
        str(RUN_PY),
        "--port",
        str(port),
        "--services",
        services,
        "--redis-url",
        redis_url,
        "--namespace",
        namespace,
        "--data-dir",
        str(data_dir),
        "--payment-failure-rate",
        "0",
    ]
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        child = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=asyncio.subprocess.STDOUT, env=env
        )
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
        process = Process(name, child, log, Shop(session))
        try:
            await eventually(lambda: _healthy(process), within=30)
            yield process
        finally:
            child.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(child.wait(), 30)
        assert code == 0, f"{name} exited with {code}:\n{process.log_text()[-3000:]}"


async def _healthy(process: Process) -> bool:
    if process.child.returncode is not None:
        raise AssertionError(f"{process.name} died:\n{process.log_text()[-3000:]}")
    try:
        status, _ = await process.shop.call("GET", "/health")
    except aiohttp.ClientConnectionError:
        return False
    return status == 200


@dataclass
class Cluster:
    processes: list[Process]
    settings: Settings
    """What the processes share (Redis, namespace), for a node of the test's own to join."""


@asynccontextmanager
async def cluster(
    layout: Sequence[tuple[str, str]], backend: str, redis_url: str, tmp: Path
) -> AsyncIterator[Cluster]:
    """One process per (name, services), sharing a Redis namespace, data directory and database."""
    settings = replace(make_settings(redis_url, tmp / "data", None), services=())
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(database(backend))
        processes = [
            await stack.enter_async_context(
                run_py(name, services, redis_url, settings.namespace, settings.data_dir, url, tmp)
            )
            for name, services in layout
        ]
        yield Cluster(processes, settings)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_replicas_share_the_work_and_oversell_nothing(
    backend: str, redis_url: str, tmp_path: Path
) -> None:
    layout = [("first", "all"), ("second", "all")]
    async with cluster(layout, backend, redis_url, tmp_path) as running:
        doors = [process.shop for process in running.processes]
        ledger = Ledger()
        frugal = await ledger.add_user(doors[0], balance=10_000)
        users = [await ledger.add_user(doors[1], balance=5_000) for _ in range(100)]
        cheap = await ledger.add_item(doors[0], price=1_000, stock=100)
        scarce = await ledger.add_item(doors[1], price=1_000, stock=7)

        await asyncio.gather(
            *(doors[n % 2].buy(frugal, cheap) for n in range(50)),
            *(doors[n % 2].buy(user, scarce) for n, user in enumerate(users * 2)),
        )
        orders = await doors[0].settle_users([frugal, *users])

        by_item = Counter((o["itemId"], o["status"]) for o in orders)
        assert by_item == {
            (cheap, "COMPLETED"): 10,
            (cheap, "CANCELLED"): 40,
            (scarce, "COMPLETED"): 7,
            (scarce, "CANCELLED"): 193,
        }
        await ledger.assert_conserved(doors[1], orders)
        for process in running.processes:
            assert "reserved" in process.log_text(), f"{process.name} took no saga step"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_services_split_over_processes_answer_every_endpoint(
    backend: str, redis_url: str, tmp_path: Path
) -> None:
    layout = [
        ("orders-and-users", "order,user"),
        ("the-rest", "inventory,item,payment,notification"),
        ("front-door", "none"),
    ]
    async with cluster(layout, backend, redis_url, tmp_path) as running:
        door = running.processes[-1].shop
        data = (await door.ok("POST", "/setup-test-data"))["data"]
        user, sword = data["user"]["id"], data["items"][0]["id"]

        done = await door.settle((await door.buy(user, sword, quantity=2))["id"])
        assert done["status"] == "COMPLETED"
        assert {step["service"] for step in done["steps"]} == {
            "order",
            "user",
            "inventory",
            "item",
            "payment",
            "notification",
        }
        assert (await door.balance(user), await door.bag(user)) == (30_000, {sword: 2})
        assert await door.stock(sword) == 48
        assert [n["kind"] for n in await door.notifications(user)] == ["order.completed"]

        async with running_node(running.settings) as remote:
            await remote.ask("payment", "configure", {"failure_rate": 1.0, "seed": None})
            declined = await door.settle((await door.buy(user, sword))["id"])
            await remote.ask("payment", "configure", {"failure_rate": 0.0, "seed": None})
        assert declined["failureReason"] == "payment: declined by the mock provider"
        assert emitted(declined)[-5:] == [
            ("payment", "payment.rejected"),
            ("item", "item.released"),
            ("inventory", "inventory.released"),
            ("user", "balance.released"),
            ("order", "order.cancelled"),
        ]
        assert (await door.balance(user), await door.stock(sword)) == (30_000, 48)

        unknown = {"userId": user, "itemId": str(uuid.uuid4()), "quantity": 1}
        status, error = await door.call("POST", "/orders", json=unknown)
        assert (status, error["error"]["code"]) == (404, "not_found")
