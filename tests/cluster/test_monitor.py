"""The monitor across processes: a front door that runs no service streams the steps taken in
the others; and Ctrl-C stops `run.py` at once even while pages hold event streams open.

A stream never ends by itself, and aiohttp waits for running handlers when it stops (up to a
minute): without the `on_shutdown` hook that ends every stream, one open page held Ctrl-C for
over two minutes.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from sagashop.chaos.processes import Child
from sagashop.config import Settings
from tests.cluster.processes import cluster
from tests.support import eventually, with_cluster_on

STOPS_WITHIN = 2.0


@with_cluster_on("sqlite-pubsub", "sqlite-streams")
async def test_a_front_door_streams_the_steps_other_processes_take(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    layout = [
        ("door", "none"),
        ("orders", "order,notification"),
        ("rest", "user,inventory,item,payment"),
    ]
    async with cluster(layout, cluster_settings, tmp_path) as (door, *_):
        user, item = await door.shop.new_user(), await door.shop.new_item()
        async with aiohttp.ClientSession(base_url=door.child.url) as session:
            stream = await session.get("/monitor/events")
            heard: list[dict[str, object]] = []
            listening = asyncio.create_task(_hear(stream, heard))
            placed: list[str] = []

            async def buy_and_listen() -> int:
                """One more purchase (the processes hear of the page within a quarter second);
                the most services heard of for one of them."""
                placed.append((await door.shop.buy(user, item))["id"])
                return max(len(_services_heard(heard, order_id)) for order_id in placed)

            await eventually(buy_and_listen, lambda most: most == 6, within=20, first_wait=0.3)
            listening.cancel()
            stream.close()


async def _hear(stream: aiohttp.ClientResponse, heard: list[dict[str, object]]) -> None:
    async for line in stream.content:
        if line.startswith(b"data: "):
            heard.extend(json.loads(line[len(b"data: ") :])["steps"])


def _services_heard(heard: list[dict[str, object]], order_id: str) -> set[object]:
    return {step["service"] for step in heard if step["orderId"] == order_id}


@with_cluster_on("sqlite-pubsub")
async def test_the_server_stops_within_two_seconds_with_pages_watching(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    child = Child("door", "all", cluster_settings, tmp_path / "door.log")
    await child.start()
    try:
        async with aiohttp.ClientSession(base_url=child.url) as session:
            streams = [await session.get("/monitor/events") for _ in range(3)]
            for stream in streams:
                assert stream.status == 200
                assert await stream.content.readline() == b"retry: 2000\n"

            started = time.monotonic()
            code = await child.stop()
            took = time.monotonic() - started

            for stream in streams:
                rest = await asyncio.wait_for(stream.content.read(), 5)  # to the end of stream
                assert rest.strip() == b"", rest
                stream.close()
    finally:
        if child.process and child.process.returncode is None:
            child.kill()
    assert code == 0, child.log_text()[-3000:]
    assert took < STOPS_WITHIN, f"Ctrl-C took {took:.1f}s with three pages watching"
