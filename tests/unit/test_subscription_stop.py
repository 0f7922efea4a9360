"""A Pub/Sub listener stops however its cancellation lands.

On Python 3.11 a cancel that arrives as redis-py's read timeout expires is taken for that timeout
(`asyncio.timeout` turns it into a TimeoutError), and the listener reads on. Stopping must not
then wait forever: that hung a process on Ctrl-C now and then, its listeners still running."""

from __future__ import annotations

import asyncio
from typing import Any

from sagashop.transport.pubsub import Subscription


async def a_listener_that_takes_its_first_cancel_for_a_timeout() -> None:
    swallowed = False
    while True:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed = True  # as asyncio.timeout does when the cancel meets its deadline


async def test_stopping_cancels_until_the_listener_has_ended() -> None:
    subscription = Subscription(redis=Any, channels=["c"], handle=Any, name="test")  # type: ignore[arg-type]
    listener = asyncio.create_task(a_listener_that_takes_its_first_cancel_for_a_timeout())
    subscription._listener = listener
    await asyncio.sleep(0)

    async with asyncio.timeout(5):
        await subscription.stop()

    assert listener.cancelled()
