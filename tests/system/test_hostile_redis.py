"""Redis is a trust boundary. Over TCP, a Redis that answers anyone is refused (unless the
operator says `--redis-insecure on`, warned in capitals). Whoever can publish on Redis cannot
cut the system's subscriptions with one huge message, and no reply of the system is ever one
huge message.

Redis closes a Pub/Sub subscriber whose output buffer passes its limit (32 MB by default), before
sagashop's own size check can drop the message: one 33 MB PUBLISH used to cut every service's
subscription. The embedded Redis refuses any command carrying more than 1 MB
(`proto-max-bulk-len`), and lets a subscriber fall further behind; the system's own long
replies (the audit's facts) go in signed parts of at most 64 KiB."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from sagashop.bootstrap import running_node
from sagashop.chaos.processes import free_port
from sagashop.credentials import RedisRefused
from sagashop.embedded_redis import embedded_redis, redis_server_binary
from sagashop.names import Request, ServiceName
from sagashop.transport.signing import MAX_WIRE_BYTES
from tests.support import make_settings, started_shop

HUGE = 33 << 20


async def _subscribers(redis: Redis) -> dict[str, str]:
    """Each Pub/Sub connection of the system: its client id, by the channels it listens to."""
    clients = await redis.client_list()
    return {c["id"]: c["name"] for c in clients if int(c.get("sub", 0)) + int(c.get("psub", 0))}


async def test_a_33_mb_publish_cuts_no_subscription_and_the_shop_sells_on(
    tmp_path: Path,
) -> None:
    with embedded_redis(tmp_path / "redis") as url:
        async with (
            started_shop(make_settings(url, tmp_path / "data", None)) as shop,
            Redis.from_url(url) as stranger,
        ):
            assert shop.node is not None
            listening = await _subscribers(stranger)
            assert listening, "the shop subscribes"
            channel = shop.node.channels.event("order.created")
            for _ in range(3):
                with pytest.raises((ResponseError, RedisConnectionError)):
                    await stranger.publish(channel, b"a" * HUGE)
            user, item = await shop.new_user(), await shop.new_item()
            done = await shop.settle((await shop.buy(user, item))["id"])
            assert done["status"] == "COMPLETED"
            assert set(await _subscribers(stranger)) >= set(listening), "none was cut"


async def test_a_long_reply_crosses_processes_in_parts_no_larger_than_any_message(
    redis_url: str, tmp_path: Path
) -> None:
    """The audit's facts of a few hundred orders, asked from a process that runs no service."""
    settings = make_settings(redis_url, tmp_path / "data", None)
    async with started_shop(settings) as shop:
        assert shop.node is not None
        users = [await shop.new_user(balance=1_000_000) for _ in range(20)]
        item = await shop.new_item(stock=10_000)
        orders = await asyncio.gather(*(shop.buy(user, item) for user in users * 15))
        for order in orders:
            await shop.settle(order["id"])
        sizes: list[int] = []
        async with Redis.from_url(redis_url) as watcher, watcher.pubsub() as replies:
            await replies.psubscribe(shop.node.channels.reply("*"))
            watching = asyncio.create_task(_sizes(replies, sizes))
            asking = replace(settings, services=(), data_dir=tmp_path / "elsewhere")
            async with running_node(asking) as elsewhere:
                facts = await elsewhere.ask(ServiceName.ORDER, Request.AUDIT_FACTS, {})
            watching.cancel()
    assert len(facts["orders"]["rows"]) == 300
    assert len(sizes) > 1, "the reply came in parts"
    assert max(sizes) <= MAX_WIRE_BYTES


async def _sizes(replies: Any, sizes: list[int]) -> None:
    async for message in replies.listen():
        if message["type"] == "pmessage":
            sizes.append(len(message["data"]))


@contextmanager
def open_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server over TCP that answers anyone, as Redis does out of the box."""
    port = free_port()
    server = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        client = SyncRedis(port=port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(RedisError):
                if client.ping():
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait()


async def test_a_redis_that_answers_anyone_over_tcp_is_refused_unless_said_insecure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_redis(tmp_path) as url:
        settings = make_settings(url, tmp_path / "data", None, services=())
        with pytest.raises(RedisRefused, match="answers clients without a password"):
            async with running_node(settings):
                pass
        async with running_node(replace(settings, redis_insecure=True)):
            pass
    assert "ANSWERS CLIENTS WITHOUT A PASSWORD" in caplog.text
