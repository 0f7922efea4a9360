"""Readers that wait for an order's next step instead of polling for it.

A reader registers before it reads, so a step that commits between its read and its wait still
wakes it; every reader of an order wakes once a step of that order has committed (the watch
observes the service's step log).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from sagashop.saga.observers import Committed


class StepWatch:
    """Who waits for the next step of which order, in one service of this process."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}

    @contextmanager
    def next_step(self, order_id: str) -> Iterator[asyncio.Future[None]]:
        """A future resolved by the order's next committed step; forgotten on leaving."""
        stepped: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(order_id, set())
        waiting.add(stepped)
        try:
            yield stepped
        finally:
            waiting.discard(stepped)
            if not waiting:
                self._waiting.pop(order_id, None)

    def committed(self, batch: Committed) -> None:
        for seen in batch.steps:
            if seen.fresh:
                self.stepped(seen.order_id)

    def stepped(self, order_id: str) -> None:
        for waiter in self._waiting.get(order_id, ()):
            if not waiter.done():
                waiter.set_result(None)
