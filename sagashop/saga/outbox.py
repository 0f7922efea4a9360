"""The outbox's other half: what steps emitted, put on the bus and marked published.

A step's outcome is written in its step-log row in the step's own transaction (see `StepLog`);
this relay publishes it as soon as the step commits, with whatever else is waiting, in one
pipeline. An event whose every step runs in this process is not published: it is handed to
those services' actors as one batch, and counts as published once they have taken it (so a
crash before then leaves it to be sent again, as a durable bus would). What went out is marked
published a moment later, in one statement per step log for all that went out meanwhile. One
that could not be delivered (Redis away, or no subscriber yet, as during a restart) stays
unpublished in its step log and is sent again by `_resend_unpublished`; so is everything left
unpublished by a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

from sagashop.events import Event
from sagashop.saga.observers import Committed, Outbox

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[Event]], Awaitable[Sequence[int]]]
"""Publishes events; answers how many receivers took each (0: nobody, send it again)."""


class Local(Protocol):
    """This process's own services, as far as the relay needs them."""

    def handles_here(self, event: Event) -> bool:
        """Whether every step the event calls for is taken in this process."""

    def hand_over(self, events: Sequence[Event], taken: Callable[[], None]) -> bool:
        """Give the events to the services that handle them; `taken` is called (from any
        thread) once they all have. False if the services take nothing more (stopping)."""


@dataclass(frozen=True)
class _Outgoing:
    outbox: Outbox
    record_id: int
    event: Event

    @property
    def key(self) -> tuple[str, int]:
        return self.outbox.service, self.record_id


class Relay:
    """Puts what steps emitted on the bus, in batches, and marks it published."""

    def __init__(
        self,
        publish: Publish,
        local: Local | None = None,
        resend_every: float = 2.0,
        batch: int = 500,
        mark_every: float = 0.25,
    ) -> None:
        self._publish = publish
        self._local = local
        self._resend_every = resend_every
        self._batch = batch
        self._mark_every = mark_every
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._pending: set[tuple[str, int]] = set()
        """Queued: sending it again before it went out would only duplicate it."""
        self._published: deque[_Outgoing] = deque()
        """Gone out, to mark: added on the loop, and from the actors' threads as they take
        what was handed to them (a deque's append needs no lock, and wakes nothing)."""
        self._flush_asked = asyncio.Event()
        self._flushing: list[asyncio.Future[None]] = []
        self._watchers: list[Callable[[Sequence[Event]], None]] = []
        self._stored: dict[str, int] = {}
        """What each outbox held unpublished when last read (every `resend_every` seconds)."""

    @property
    def backlog(self) -> int:
        """Events not yet published, as the step logs hold them when last read: while the bus
        is away they pile up there, whatever the relay holds in memory."""
        return sum(self._stored.values())

    def send(self, outbox: Outbox, record_id: int, event: Event) -> None:
        outgoing = _Outgoing(outbox, record_id, event)
        if outgoing.key not in self._pending:
            self._pending.add(outgoing.key)
            self._queue.put_nowait(outgoing)

    def committed(self, batch: Committed) -> None:
        """Send what the batch's steps emitted, and again what those taken before had."""
        for seen in batch.steps:
            if seen.outcome is not None and seen.record_id is not None:
                self.send(batch.outbox, seen.record_id, seen.outcome)

    def watch(self, seen: Callable[[Sequence[Event]], None]) -> Callable[[], None]:
        """Tell `seen` of every batch of events sent from now on, however it went (the bus, or
        this process's own services); the function returned stops it."""
        self._watchers.append(seen)
        return lambda: self._watchers.remove(seen)

    async def run(self, outboxes: Sequence[Outbox]) -> None:
        """Publish until cancelled; call in a task that can reach the store."""
        loop, reaching = asyncio.get_running_loop(), contextvars.copy_context()
        helpers = [
            loop.create_task(self._resend_unpublished(outboxes), context=reaching),
            loop.create_task(self._keep_marking(), context=reaching.copy()),
        ]
        try:
            while True:
                await self._publish_batch(await self._next_batch())
        finally:
            for helper in helpers:
                helper.cancel()

    async def flush(self) -> None:
        """Wait until everything sent so far was published and marked, or left to be sent
        again. The running relay marks it (only its task reaches the store)."""
        await self._queue.join()
        marked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flushing.append(marked)
        self._flush_asked.set()
        await marked

    async def _next_batch(self) -> list[_Outgoing]:
        batch = [await self._queue.get()]
        while len(batch) < self._batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _publish_batch(self, batch: list[_Outgoing]) -> None:
        """Whatever fails here is sent again later: at least once, never lost."""
        delivered: list[_Outgoing] = []
        for seen in self._watchers:
            seen([item.event for item in batch])
        away = self._hand_over(batch)
        try:
            receivers = await self._publish([item.event for item in away]) if away else []
            delivered = [item for item, n in zip(away, receivers, strict=True) if n > 0]
        except Exception as error:
            log.warning("could not publish %d events (%r); will retry", len(away), error)
        finally:
            self._published.extend(delivered)
            for item in batch:
                self._pending.discard(item.key)
                self._queue.task_done()

    def _hand_over(self, batch: list[_Outgoing]) -> list[_Outgoing]:
        """Give this process's services the events only they handle; the rest, to publish."""
        if self._local is None:
            return batch
        here = [item for item in batch if self._local.handles_here(item.event)]
        if here and not self._local.hand_over(
            [item.event for item in here], partial(self._published.extend, here)
        ):
            here = []  # stopping: left unpublished, sent again at the next start
        handed = {id(item) for item in here}
        return [item for item in batch if id(item) not in handed]

    async def _keep_marking(self) -> None:
        """Mark what went out every `mark_every` seconds (at once when a flush asks): one
        statement per step log for all of it, instead of one per batch published."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._mark_every):
                    await self._flush_asked.wait()
            self._flush_asked.clear()
            flushing, self._flushing = self._flushing, []
            await self._mark_published()
            for marked in flushing:
                if not marked.done():  # a flush that gave up waiting
                    marked.set_result(None)

    async def _mark_published(self) -> None:
        published = [self._published.popleft() for _ in range(len(self._published))]
        by_outbox: dict[Outbox, list[int]] = {}
        for item in published:
            by_outbox.setdefault(item.outbox, []).append(item.record_id)
        for outbox, ids in by_outbox.items():
            try:
                await outbox.mark_published(ids)
            except Exception as error:
                log.warning(
                    "%s: published %d events but could not mark them (%s); they will go out again",
                    outbox.service,
                    len(ids),
                    error,
                )

    async def _resend_unpublished(self, outboxes: Sequence[Outbox]) -> None:
        while True:
            cutoff = datetime.now(UTC) - timedelta(seconds=self._resend_every)
            for outbox in outboxes:
                try:
                    unsent = await outbox.unpublished(cutoff, self._batch)
                    self._stored[outbox.service] = await outbox.count_unpublished()
                except Exception as error:
                    log.warning("%s: could not read its outbox: %s", outbox.service, error)
                    continue
                for record_id, event in unsent:
                    self.send(outbox, record_id, event)
            await asyncio.sleep(self._resend_every)
