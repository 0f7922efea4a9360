"""Exactly-once effects on at-least-once delivery: `StepLog` is the one way any service takes a
saga step. What a step emits is kept in the same row, and `sagashop.saga.outbox` publishes it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from sagashop.events import Event, kind_of
from sagashop.monitor.feed import StepFeed
from sagashop.saga.declare import Step
from sagashop.saga.outbox import Relay
from sagashop.saga.watch import StepWatch
from sagashop.store.errors import store_errors
from sagashop.store.journal import DeadLetter, StepRecord
from sagashop.store.render import as_json, found, now
from sagashop.store.rows import insert_new, update_each

_AFTER_COMMIT: ContextVar[list[Callable[[], None]]] = ContextVar("after_commit")
"""What the steps of the transaction being taken asked to run once it commits."""


class StepLog:
    """The steps one service has taken and the events it gave up on, in its own database."""

    def __init__(
        self,
        service: str,
        records: type[StepRecord],
        dead_letters: type[DeadLetter],
        relay: Relay,
        feed: StepFeed | None = None,
    ) -> None:
        self.service = service
        self.records = records
        self.dead_letters = dead_letters
        self.relay = relay
        self.feed = feed
        """Where the monitor page hears of each committed step (none in the store tests)."""
        self.watch = StepWatch()
        self.log = logging.getLogger(f"sagashop.{service}")

    async def run(self, chosen: Step, event: Event) -> Event | None:
        return await self.record(
            event.order_id,
            chosen.name,
            event.name,
            lambda: self._act(chosen, event),
            event_id=event.event_id,
        )

    async def run_all(self, steps: Sequence[tuple[Step, Event]]) -> None:
        """Take several steps in one transaction (see `_take`).

        Anything that goes wrong (a conflict, a poison event) rolls all of them back and is
        raised: the caller then takes them one at a time, where each failure is handled on its
        own and none is lost or taken twice."""
        await self._take(
            [
                _Claim(
                    event.order_id,
                    chosen.name,
                    event.name,
                    partial(self._act, chosen, event),
                    event.event_id,
                )
                for chosen, event in steps
            ]
        )

    async def record(
        self,
        order_id: str,
        step: str,
        handled: str,
        action: Callable[[], Awaitable[Event | None]],
        event_id: str | None = None,
        gave_up: bool = False,
    ) -> Event | None:
        """Claim (order, step), act, and keep the outcome, in one transaction (see `_take`);
        the outcome, or the one recorded when the step was taken before. `event_id` names the
        event handled, if any, for the step's log line."""
        (outcome,) = await self._take([_Claim(order_id, step, handled, action, event_id, gave_up)])
        return outcome

    async def _take(self, claims: Sequence[_Claim]) -> list[Event | None]:
        """Claim every (order, step) in one statement, act on those claimed (once each), and
        keep their outcomes in one more: one transaction in all. Each claim's outcome is
        returned.

        The claim is the first write, so the unique constraint decides between two deliveries
        (or two processes) before either acts. A step already taken is not taken again: its
        recorded outcome is published once more, so a redelivery heals a loss further down.
        """
        rows = [self.records(order_id=c.order_id, step=c.step, handled=c.handled) for c in claims]
        acted: dict[tuple[str, str], tuple[int, Event | None]] = {}
        async with _after_commit(), store_errors(), in_transaction(self.service) as connection:
            won = await insert_new(connection, rows, ("id", "order_id", "step"))
            claimed = {(_canonical(row["order_id"]), row["step"]): row["id"] for row in won}
            for claim in claims:
                if claim.key in claimed and claim.key not in acted:
                    acted[claim.key] = (claimed[claim.key], await claim.action())
            if len(acted) != len(claimed):  # a row claimed for no step here: never commit that
                unmatched = sorted(set(claimed) - set(acted))
                raise RuntimeError(f"{self.service}: claimed, with nothing to take: {unmatched}")
            outcomes = {record_id: o.to_dict() for record_id, o in acted.values() if o}
            await update_each(connection, self.records, "outcome", outcomes)
        for (order_id, _), (record_id, outcome) in acted.items():
            self._committed(record_id, order_id, outcome)
        if self.feed is not None and self.feed.listening:
            self._show(self.feed, claims, acted)
        replayed = await self._replay_taken([c.key for c in claims if c.key not in acted])
        if self.log.isEnabledFor(logging.DEBUG):  # hundreds of steps a second: usually off
            self._log_steps(claims, acted)
        return [acted[c.key][1] if c.key in acted else replayed.get(c.key) for c in claims]

    async def _replay_taken(
        self, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Event | None]:
        """Publish again what the steps taken before emitted; their outcomes by key."""
        if not keys:
            return {}
        async with store_errors():
            found_rows = await self.records.filter(order_id__in=[order for order, _ in keys])
        wanted = set(keys)
        return {
            (_canonical(row.order_id), row.step): self._replay(row)
            for row in found_rows
            if (_canonical(row.order_id), row.step) in wanted
        }

    async def _act(self, chosen: Step, event: Event) -> Event | None:
        outcome = await chosen.run(event)
        if outcome is not None and outcome.name not in chosen.emits:
            raise TypeError(f"{self.service}.{chosen.name} emitted undeclared {outcome.name}")
        return outcome

    async def give_up(self, chosen: Step, event: Event, error: BaseException) -> Event | None:
        """Keep the event as a dead letter and, for a step that can fail, close the step with
        its failure event, so the saga undoes what came before; both in one transaction."""
        if chosen.fails_as is None:
            async with store_errors(), in_transaction(self.service):
                await self._bury(chosen, event, error)
            if self.log.isEnabledFor(logging.DEBUG):
                self._log_step(event.order_id, chosen.name, event.name, event.event_id, "failed")
            return None
        reason = f"{self.service} failed: internal error ({type(error).__name__}: {error})"
        failure = event.follow(chosen.fails_as, reason[:250])

        async def bury_and_fail() -> Event:
            await self._bury(chosen, event, error)
            return failure

        return await self.record(
            event.order_id,
            chosen.name,
            event.name,
            bury_and_fail,
            event_id=event.event_id,
            gave_up=True,
        )

    def _log_steps(
        self, claims: Sequence[_Claim], acted: Mapping[tuple[str, str], tuple[int, Event | None]]
    ) -> None:
        """A line per claim; a claim twice in one batch (an event delivered twice) was taken
        once, by the first."""
        seen: set[tuple[str, str]] = set()
        for c in claims:
            outcome = "already taken" if c.key in seen else _outcome(c, acted)
            seen.add(c.key)
            self._log_step(c.order_id, c.step, c.handled, c.event_id, outcome)

    def _log_step(
        self, order_id: str, step: str, handled: str, event_id: str | None, outcome: str
    ) -> None:
        """The one log line for each step taken, taken before, or given up on (`--log-steps`),
        with its facts as fields of their own for the JSON log format."""
        fields = {"order_id": order_id, "event_id": event_id, "service": self.service}
        self.log.debug(
            "order %s: %s.%s on %s: %s",
            order_id,
            self.service,
            step,
            handled,
            outcome,
            extra={**fields, "step": step, "outcome": outcome},
        )

    def _show(
        self,
        feed: StepFeed,
        claims: Sequence[_Claim],
        acted: Mapping[tuple[str, str], tuple[int, Event | None]],
    ) -> None:
        """Tell the monitor of each step this batch took (a claim twice in it was taken once)."""
        shown: set[tuple[str, str]] = set()
        for claim in claims:
            if claim.key in acted and claim.key not in shown:
                shown.add(claim.key)
                outcome = acted[claim.key][1]
                feed.taken(self.service, claim.order_id, claim.step, claim.handled, outcome)

    @staticmethod
    def after_commit(then: Callable[[], None]) -> None:
        """Run `then` once the step being taken has committed, never if it rolls back: for
        what must happen once per step, like counting it (a batch rolled back is taken again,
        one step at a time)."""
        _AFTER_COMMIT.get().append(then)

    def _committed(self, record_id: int, order_id: str, outcome: Event | None) -> None:
        """Wake who waits for the order, and have the relay publish what the step emitted."""
        self.watch.stepped(order_id)
        if outcome is not None:
            self.relay.send(self, record_id, outcome)

    async def republish(self, order_id: str, step: str) -> Event | None:
        """Publish again what a step emitted (the order service re-drives a stalled saga so)."""
        recorded = await self.records.get_or_none(order_id=order_id, step=step)
        return None if recorded is None else self._replay(recorded)

    def _replay(self, recorded: StepRecord) -> Event | None:
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

    async def timeline(self, order_id: str) -> list[dict[str, Any]]:
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
                "kind": kind_of(row.outcome["name"] if row.outcome else row.handled),
            }
            for row in rows
        ]

    async def dead(
        self, after: Mapping[str, int] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The letters, oldest first, `limit` of them at most, past the number `after` gives
        this service (the last each service's letters gave on a page across all of them)."""
        mark = (after or {}).get(self.service, 0)
        chosen = self.dead_letters.filter(id__gt=mark).order_by("id")
        letters = await (chosen if limit is None else chosen.limit(limit))
        return [
            {**as_json(letter), "id": f"{self.service}-{letter.id}", "service": self.service}
            for letter in letters
        ]

    async def count_dead(self) -> int:
        """How many letters wait for a fix and a replay (not those replayed already)."""
        return await self.dead_letters.filter(replayed_at=None).count()

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
class _Claim:
    """A step to take for an order, and what taking it does."""

    order_id: str
    step: str
    handled: str
    action: Callable[[], Awaitable[Event | None]]
    event_id: str | None = None
    """The event handled, if a step handles one (a command's step does not)."""
    gave_up: bool = False
    """The step failed for good: its event went to the dead letters."""

    @property
    def key(self) -> tuple[str, str]:
        """As the claim's row says it back (a database may spell a UUID its own way)."""
        return _canonical(self.order_id), self.step


def _outcome(claim: _Claim, acted: Mapping[tuple[str, str], tuple[int, Event | None]]) -> str:
    """What a claim came to, for its log line: the event it emitted (or nothing), the step was
    taken before, or it failed for good."""
    if claim.key not in acted:
        return "already taken"
    if claim.gave_up:
        return "failed"
    emitted = acted[claim.key][1]
    return "nothing" if emitted is None else emitted.name


@asynccontextmanager
async def _after_commit() -> AsyncIterator[None]:
    """Collect what the steps ask to run after the commit (see `StepLog.after_commit`); run it
    if the block (the transaction) ended without an error."""
    waiting: list[Callable[[], None]] = []
    token = _AFTER_COMMIT.set(waiting)
    try:
        yield
    finally:
        _AFTER_COMMIT.reset(token)
    for then in waiting:
        then()


def _canonical(order_id: Any) -> str:
    return str(UUID(str(order_id)))
