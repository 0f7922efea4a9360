"""Fault injection for chaos runs and tests, off unless asked for: a transport that loses a share
of the events it publishes (as if lost after Redis took them) and sends another share twice."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from sagashop.events import Event, EventName
from sagashop.transport.protocol import EventTransport, Receive


@dataclass(frozen=True)
class Faults:
    """Drop a share of published events, publish another share twice; `only` limits both to
    some event names."""

    drop: float = 0.0
    duplicate: float = 0.0
    only: frozenset[EventName] | None = None

    def copies(self, event: Event, draw: float) -> int:
        if self.only is not None and event.name not in self.only:
            return 1
        if draw < self.drop:
            return 0
        return 2 if draw < self.drop + self.duplicate else 1


@dataclass
class FaultCounts:
    dropped: int = 0
    duplicated: int = 0


class FaultInjection:
    """An `EventTransport` that publishes through another one, under `faults`."""

    def __init__(self, inner: EventTransport, faults: Faults = Faults()) -> None:
        self.inner = inner
        self.faults = faults
        """Can be switched while running (the chaos run and tests lose events on purpose)."""
        self.counts = FaultCounts()
        self._draw = random.Random()

    async def start(self, handled: Mapping[str, Collection[EventName]], receive: Receive) -> None:
        await self.inner.start(handled, receive)

    async def stop(self) -> None:
        await self.inner.stop()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, events: Sequence[Event]) -> list[int]:
        """A dropped event counts as taken by one receiver, as if lost after Redis took it."""
        copies = self.copies(events)
        sent = [event for event, n in zip(events, copies, strict=True) for _ in range(n)]
        taken = iter(await self.inner.publish(sent))
        return [1 if n == 0 else max(next(taken) for _ in range(n)) for n in copies]

    def copies(self, events: Sequence[Event]) -> list[int]:
        """How many times each event is to be sent (0: lost), counted: for events handed to
        this process's own services too, which the same faults reach."""
        if not (self.faults.drop or self.faults.duplicate):
            return [1] * len(events)
        copies = [self.faults.copies(event, self._draw.random()) for event in events]
        self.counts.dropped += copies.count(0)
        self.counts.duplicated += copies.count(2)
        return copies
