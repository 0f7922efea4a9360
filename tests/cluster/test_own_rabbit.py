"""The chaos run's own RabbitMQ (`OwnRabbit`): restarted (RabbitMQ stopped with its queues' Raft
members and its database, and started again), it keeps a durable quorum queue and the message
in it; a connection held across the restart is closed, and a new one works."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aio_pika
import pytest

from sagashop.chaos.rabbitmq import START_TIMEOUT, OwnRabbit
from sagashop.transport.rabbitmq import LOST
from tests.support import own_rabbit_or_skip

pytestmark = pytest.mark.rabbitmq

QUEUE = "kept"
QUORUM = {"x-queue-type": "quorum"}


async def test_a_restart_keeps_a_durable_queue_and_its_message_and_ends_the_connections(
    tmp_path: Path,
) -> None:
    own_rabbit_or_skip()
    log_path = tmp_path / "rabbitmq.log"
    broker = OwnRabbit(log_path)
    try:
        await asyncio.to_thread(broker.start)
        held = await aio_pika.connect(broker.url)
        channel = await held.channel()  # in confirm mode: a publish returns once it is kept
        await channel.declare_queue(QUEUE, durable=True, arguments=QUORUM)
        message = aio_pika.Message(b"kept", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(message, QUEUE)
        down = await asyncio.to_thread(broker.restart)

        assert not held.connected.is_set()
        with pytest.raises(LOST):
            await channel.declare_queue(QUEUE, passive=True)
        fresh = await aio_pika.connect(broker.url)
        try:
            queue = await (await fresh.channel()).declare_queue(QUEUE, passive=True)
            got = await queue.get(timeout=5)
            await got.ack()
        finally:
            await fresh.close()
    finally:
        await asyncio.to_thread(broker.stop)

    assert got.body == b"kept"
    assert 0 < down < START_TIMEOUT
    assert "Successfully stopped RabbitMQ and its dependencies" in log_path.read_text()
