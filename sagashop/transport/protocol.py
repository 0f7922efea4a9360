"""What the node needs of an event transport, whichever it is (Pub/Sub, Streams or RabbitMQ)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from sagashop.events import Event, EventName

log = logging.getLogger("sagashop.transport")

Done = Callable[[], None]
"""Called (from any thread) once a service has handled a batch: Streams and RabbitMQ
acknowledge it then."""
Receive = Callable[[str, list[Event], Done | None], None]
"""Hands a service (by name) the events it won, in arrival order."""

RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class EventTransport(Protocol):
    async def start(self, handled: Mapping[str, Collection[EventName]], receive: Receive) -> None:
        """Hand each service in `handled` the events it handles, as they arrive."""

    async def stop(self) -> None:
        """Stop receiving; a batch a service is handling is finished first."""

    async def publish(self, events: Sequence[Event]) -> list[int]:
        """Publish in one round trip; answer how many receivers took each event (0: nobody
        did, so the outbox sends it again)."""

    async def close(self) -> None:
        """Let go of what the transport opened itself, once nothing more is published (after
        `stop`, the relay still publishes what the last steps emitted)."""


def reconnect_delay(failures: int) -> float:
    return RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
