"""Several `python run.py` processes on one Redis and one set of databases.

Two processes running every service share the work (each delivery is claimed by one of them)
and the concurrency guarantees still hold. Services split over processes, with a front door
that runs none, answer every endpoint: asks and events cross processes the same way.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from sagashop.bootstrap import running_node
from sagashop.config import Settings
from sagashop.names import Request, ServiceName
from tests.cluster.processes import cluster
from tests.support import Ledger, Shop, emitted, with_cluster_on


async def test_two_replicas_share_the_work_and_oversell_nothing(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    layout = [("first", "all"), ("second", "all")]
    telling = replace(cluster_settings, log_steps=True)  # each step logged, to see who took it
    async with cluster(layout, telling, tmp_path) as processes:
        doors = [process.shop for process in processes]
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
        for process in processes:
            assert "reserved" in process.log_text(), f"{process.name} took no saga step"


SPLIT = [
    ("orders-and-users", "order,user"),
    ("the-rest", "inventory,item,payment,notification"),
    ("front-door", "none"),
]
"""The services over two processes, and a front door that runs none."""


async def two_swords_bought(door: Shop) -> tuple[str, str, dict[str, Any]]:
    """The sample data's player buys two of its first item: the player, the item, the order."""
    data = (await door.ok("POST", "/setup-test-data"))["data"]
    user, sword = data["user"]["id"], data["items"][0]["id"]
    return user, sword, await door.settle((await door.buy(user, sword, quantity=2))["id"])


@with_cluster_on("sqlite-pubsub", "sqlite-streams", "sqlite-rabbitmq")  # asks and events cross
async def test_services_split_over_processes_answer_every_endpoint(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    async with cluster(SPLIT, cluster_settings, tmp_path) as processes:
        door = processes[-1].shop
        user, sword, done = await two_swords_bought(door)
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

        async with running_node(replace(cluster_settings, services=())) as remote:
            await remote.ask(
                ServiceName.PAYMENT, Request.CONFIGURE_PAYMENTS, {"failure_rate": 1.0, "seed": None}
            )
            declined = await door.settle((await door.buy(user, sword))["id"])
            await remote.ask(
                ServiceName.PAYMENT, Request.CONFIGURE_PAYMENTS, {"failure_rate": 0.0, "seed": None}
            )
        assert declined["failureReason"] == "payment: declined by the mock provider"
        assert emitted(declined)[-6:] == [
            ("payment", "payment.rejected"),
            ("item", "item.released"),
            ("inventory", "inventory.released"),
            ("user", "balance.released"),
            ("order", "order.cancelled"),
            ("notification", "notification.sent"),
        ]
        assert (await door.balance(user), await door.stock(sword)) == (30_000, 48)

        unknown = {"userId": user, "itemId": str(uuid.uuid4()), "quantity": 1}
        status, error = await door.call("POST", "/orders", json=unknown)
        assert (status, error["error"]["code"]) == (404, "not_found")


@with_cluster_on("sqlite-rabbitmq")
async def test_on_rabbitmq_alone_services_split_over_processes_need_no_redis(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    """With no Redis named, no process starts or reaches one: requests, their replies (the
    audit's, in parts) and the monitor's steps go by the broker, as the events do."""
    alone = replace(cluster_settings, redis_url=None)
    async with cluster(SPLIT, alone, tmp_path) as processes:
        door = processes[-1].shop
        user, sword, done = await two_swords_bought(door)
        assert done["status"] == "COMPLETED"
        assert (await door.balance(user), await door.bag(user)) == (30_000, {sword: 2})
        report = await door.ok("GET", "/audit")
        assert report["ok"], report["violations"]
        for process in processes:
            checks = (await process.shop.ok("GET", "/readyz"))["checks"]
            assert checks["rabbitmq"] == "ok"
            assert "redis" not in checks
    assert not [path for path in alone.data_dir.rglob("*") if path.suffix == ".sock"]
