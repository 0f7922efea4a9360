"""Exactly-once effects on at-least-once delivery, and no event lost between commit and publish.

`StepLog` is the one way any service takes a saga step; `Relay` is the one way what a step emitted
reaches the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from sagashop.actors.runtime import Step
from sagashop.events import Event
from sagashop.store.base import DeadLetter, StepRecord, as_json, found, now

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[Event]], Awaitable[Sequence[int]]]


class StepLog:
    """The steps one service has taken and the events it gave up on, in its own database."""

    def __init__(
        self,
        service: str,
        records: type[StepRecord],
        dead_letters: type[DeadLetter],
        relay: Relay,
    ) -> None:
        self.service = service
        self.records = records
        self.dead_letters = dead_letters
        self.relay = relay

    async def run(self, chosen: Step, event: Event) -> Event | None:
        async def act() -> Event | None:
            outcome = await chosen.run(event)
            if outcome is not None and outcome.name not in chosen.emits:
                raise TypeError(f"{self.service}.{chosen.name} emitted undeclared {outcome.name}")
            return outcome

        return await self.record(event.order_id, chosen.name, event.name, act)

    async def give_up(self, chosen: Step, event: Event, error: BaseException) -> Event | None:
        """Keep the event as a dead letter and, for a step that can fail, close the step with
        its failure event, so the saga undoes what came before; both in one transaction."""
        if chosen.fails_as is None:
            async with in_transaction(self.service):
                await self._bury(chosen, event, error)
            return None
        reason = f"{self.service} failed: internal error ({type(error).__name__}: {error})"
        failure = event.follow(chosen.fails_as, reason[:250])

        async def bury_and_fail() -> Event:
            await self._bury(chosen, event, error)
            return failure

        return await self.record(event.order_id, chosen.name, event.name, bury_and_fail)

    async def record(
        self,
        order_id: str,
        step: str,
        handled: str,
        action: Callable[[], Awaitable[Event | None]],
    ) -> Event | None:
        """Claim (order, step), act, and keep the outcome, in one transaction.

        The claim is the first write, so the unique constraint decides between two deliveries
        (or two processes) before either acts. A step already taken is not taken again: its
        recorded outcome is published once more, so a redelivery heals a loss further down.
        """
        try:
            async with in_transaction(self.service):
                record = await self.records.create(order_id=order_id, step=step, handled=handled)
                outcome = await action()
                if outcome is not None:
                    await self.records.filter(id=record.id).update(outcome=outcome.to_dict())
        except IntegrityError:
            recorded = await self.records.get_or_none(order_id=order_id, step=step)
            if recorded is None:
                raise  # a conflict inside the action, not a redelivery: let the caller retry
            return self._replay(recorded)
        if outcome is not None:
            self.relay.send(self, record.id, outcome)
        return outcome

    async def republish(self, order_id: str, step: str) -> Event | None:
        """Publish again what a step emitted (the order service re-drives a stalled saga so)."""
        recorded = await self.records.get_or_none(order_id=order_id, step=step)
        return None if recorded is None else self._replay(recorded)

    def _replay(self, recorded: StepRecord) -> Event | None:
        log.debug("order %s: %s.%s already taken", recorded.order_id, self.service, recorded.step)
        if recorded.outcome is None:
            return None
        outcome = Event.from_dict(recorded.outcome)
        self.relay.send(self, recorded.id, outcome)
        return outcome

    async def _bury(self, chosen: Step, event: Event, error: BaseException) -> None:
        text = f"{type(error).__name__}: {error}"
        letter, created = await self.dead_letters.get_or_create(
            order_id=event.order_id,
            step=chosen.name,
            defaults={"event": event.to_dict(), "error": text},
        )
        if not created:
            await self.dead_letters.filter(id=letter.id).update(
                event=event.to_dict(),
                error=text,
                failures=F("failures") + 1,
                replayed_at=None,
                updated_at=now(),
            )

    async def history(self, order_id: str) -> list[dict[str, Any]]:
        """This service's part of an order's timeline."""
        rows = await self.records.filter(order_id=order_id).order_by("id")
        return [
            {
                "at": row.handled_at.isoformat(),
                "service": self.service,
                "step": row.step,
                "handled": row.handled,
                "event": row.outcome["name"] if row.outcome else None,
                "reason": row.outcome.get("reason") if row.outcome else None,
            }
            for row in rows
        ]

    async def dead(self) -> list[dict[str, Any]]:
        letters = await self.dead_letters.all().order_by("id")
        return [
            {**as_json(letter), "id": f"{self.service}-{letter.id}", "service": self.service}
            for letter in letters
        ]

    async def exhume(self, letter_id: int) -> Event:
        """The dead letter's event, marked as replayed, for the caller to deliver again."""
        letter = await found(self.dead_letters, "dead letter", str(letter_id))
        await self.dead_letters.filter(id=letter_id).update(replayed_at=now())
        return Event.from_dict(letter.event)

    async def unpublished(self, older_than: datetime, limit: int) -> list[tuple[int, Event]]:
        rows = (
            await self.records.filter(published=False, handled_at__lt=older_than)
            .exclude(outcome=None)
            .order_by("id")
            .limit(limit)
        )
        return [(row.id, Event.from_dict(row.outcome)) for row in rows]

    async def mark_published(self, ids: Sequence[int]) -> None:
        await self.records.filter(id__in=list(ids)).update(published=True)


@dataclass(frozen=True)
class _Outgoing:
    log: StepLog
    record_id: int
    event: Event


class Relay:
    """Puts what steps emitted on the bus and marks it published: the outbox's other half.

    An event goes out as soon as its step commits. One that could not be delivered (Redis away,
    or no subscriber yet, as during a restart) stays unpublished in its step log, and the sweep
    sends it again; so does the first sweep after a crash.
    """

    def __init__(self, publish: Publish, sweep_every: float = 2.0, batch: int = 500) -> None:
        self._publish = publish
        self._sweep_every = sweep_every
        self._batch = batch
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self._pending: set[tuple[str, int]] = set()

    def send(self, step_log: StepLog, record_id: int, event: Event) -> None:
        key = (step_log.service, record_id)
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(_Outgoing(step_log, record_id, event))

    async def run(self, logs: Sequence[StepLog]) -> None:
        """Publish until cancelled; call in a task that can reach the store."""
        sweeper = asyncio.create_task(self._sweep(logs))
        try:
            while True:
                await self._publish_batch(await self._next_batch())
        finally:
            sweeper.cancel()

    async def flush(self) -> None:
        """Wait until everything sent so far has been published or given back to the sweep."""
        await self._queue.join()

    async def _next_batch(self) -> list[_Outgoing]:
        batch = [await self._queue.get()]
        while len(batch) < self._batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _publish_batch(self, batch: list[_Outgoing]) -> None:
        """Whatever fails here, the sweep sends the batch again: at least once, never lost."""
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
                self._pending.discard((item.log.service, item.record_id))
                self._queue.task_done()

    async def _mark(self, delivered: list[_Outgoing]) -> None:
        by_log: dict[StepLog, list[int]] = {}
        for item in delivered:
            by_log.setdefault(item.log, []).append(item.record_id)
        for step_log, ids in by_log.items():
            await step_log.mark_published(ids)

    async def _sweep(self, logs: Sequence[StepLog]) -> None:
        while True:
            cutoff = datetime.now(UTC) - timedelta(seconds=self._sweep_every)
            for step_log in logs:
                try:
                    unsent = await step_log.unpublished(cutoff, self._batch)
                except Exception as error:
                    log.warning("%s outbox sweep failed: %s", step_log.service, error)
                    continue
                for record_id, event in unsent:
                    self.send(step_log, record_id, event)
            await asyncio.sleep(self._sweep_every)
