"""A bus key rotated without downtime: during the rotation one process signs with the new key
and another still with the old, each listing both, and purchases go through as before."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

from sagashop.config import Settings
from sagashop.transport.signing import BusKeys
from tests.cluster.processes import run_process
from tests.support import with_cluster_on

NEW = "new:the-new-bus-secret-rotated-in"
OLD = "old:the-old-bus-secret-rotated-out"


# Events, asks and replies all cross between the processes.
@with_cluster_on("sqlite-pubsub", "sqlite-streams", "sqlite-rabbitmq")
async def test_processes_mid_rotation_complete_purchases(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    layout = [
        ("ahead", "order,user,inventory", f"{NEW},{OLD}"),
        ("behind", "item,payment,notification", f"{OLD},{NEW}"),
    ]
    async with AsyncExitStack() as stack:
        processes = [
            await stack.enter_async_context(
                run_process(name, services, _keyed(cluster_settings, keys), tmp_path)
            )
            for name, services, keys in layout
        ]
        ahead, behind = (process.shop for process in processes)
        user, item = await ahead.new_user(), await behind.new_item(price=700)

        done = await behind.settle((await ahead.buy(user, item))["id"])

        assert done["status"] == "COMPLETED"
        assert {step["service"] for step in done["steps"]} >= {"order", "item", "payment"}
        assert await ahead.balance(user) == 50_000 - 700
        for process in processes:
            rejected = (await process.shop.ok("GET", "/health"))["faults"]["rejected"]
            assert rejected == {}, f"{process.name} dropped {rejected}"
            assert "secret" not in " ".join(process.child.argv())  # keys travel in the environment


def _keyed(settings: Settings, keys: str) -> Settings:
    return replace(settings, bus_keys=BusKeys.parse(keys))
