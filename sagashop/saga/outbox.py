"""The outbox's other half: what steps emitted, put on the bus and marked published.

A step's outcome is written in its step-log row in the step's own transaction (see `StepLog`);
this relay publishes it as soon as the step commits. One that could not be delivered (Redis away,
or no subscriber yet, as during a restart) stays unpublished in its step log and is sent again
by `resend_unpublished`; so is everything left unpublished by a crash.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sagashop.events import Event

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[Event]], Awaitable[Sequence[int]]]
"""Publishes events; answers how many receivers took each (0: nobody, send it again)."""


class Outbox(Protocol):
    """Where one service keeps what its steps emitted (its `StepLog`)."""

    service: str

    async def unpublished(self, older_than: datetime, limit: int) -> list[tuple[int, Event]]: ...

    async def mark_published(self, ids: Sequence[int]) -> None: ...


@dataclass(frozen=True)
class _Outgoing:
    outbox: Outbox
    record_id: int
    event: Event


class Relay:
    """Puts what steps emitted on the bus, in batches, and marks it published."""

    def __init__(self, publish: Publish, resend_every: float = 2.0, batch: int = 500) -> None:
        self._publish = publish
        self._resend_every = resend_every
        self._batch = batch
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._pending: set[tuple[str, int]] = set()

    def send(self, outbox: Outbox, record_id: int, event: Event) -> None:
        key = (outbox.service, record_id)
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(_Outgoing(outbox, record_id, event))

    async def run(self, outboxes: Sequence[Outbox]) -> None:
        """Publish until cancelled; call in a task that can reach the store."""
        resender = asyncio.create_task(self._resend_unpublished(outboxes))
        try:
            while True:
                await self._publish_batch(await self._next_batch())
        finally:
            resender.cancel()

    async def flush(self) -> None:
        """Wait until everything sent so far was published, or left to be sent again."""
        await self._queue.join()

    async def _next_batch(self) -> list[_Outgoing]:
        batch = [await self._queue.get()]
        while len(batch) < self._batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _publish_batch(self, batch: list[_Outgoing]) -> None:
        """Whatever fails here is sent again later: at least once, never lost."""
        try:
            receivers = await self._publish([item.event for item in batch])
        except Exception as error:
            log.warning("could not publish %d events (%s); will retry", len(batch), error)
        else:
            delivered = [item for item, n in zip(batch, receivers, strict=True) if n > 0]
            try:
                await self._mark(delivered)
            except Exception as error:
                log.warning(
                    "published %d events but could not mark them (%s); they will go out again",
                    len(delivered),
                    error,
                )
        finally:
            for item in batch:
                self._pending.discard((item.outbox.service, item.record_id))
                self._queue.task_done()

    async def _mark(self, delivered: list[_Outgoing]) -> None:
        by_outbox: dict[Outbox, list[int]] = {}
        for item in delivered:
            by_outbox.setdefault(item.outbox, []).append(item.record_id)
        for outbox, ids in by_outbox.items():
            await outbox.mark_published(ids)

    async def _resend_unpublished(self, outboxes: Sequence[Outbox]) -> None:
        while True:
            cutoff = datetime.now(UTC) - timedelta(seconds=self._resend_every)
            for outbox in outboxes:
                try:
                    unsent = await outbox.unpublished(cutoff, self._batch)
                except Exception as error:
                    log.warning("%s: could not read its outbox: %s", outbox.service, error)
                    continue
                for record_id, event in unsent:
                    self.send(outbox, record_id, event)
            await asyncio.sleep(self._resend_every)
