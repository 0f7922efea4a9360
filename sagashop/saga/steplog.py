"""Exactly-once effects on at-least-once delivery: `StepLog` is the one way any service takes a
saga step. What a step emits is kept in its step row, and `sagashop.saga.outbox` publishes it.

A batch of steps is one transaction (`sagashop.store.batch`): it reads which of the batch's
(order, step) pairs were taken before, the rows the others touch (`Book`), lets each step decide
on those rows in mailbox order, writes what changed, and inserts one step row per step taken,
with its outcome. The (order, step) key is unique, so if another process took a step meanwhile
the insert fails, the whole batch rolls back, and taken again it finds the step done. A step
taken before is not taken again: its recorded outcome is published once more, so a redelivery
heals a loss further down.

That is its one job. Who hears of a committed batch (the outbox's relay, waiting reads, the
monitor, the log) is an observer wired in at start (`sagashop.saga.observers`); the events it
gives up on are kept by `DeadLetters`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sagashop.events import Event, EventName, kind_of
from sagashop.saga.deadletters import DeadLetters
from sagashop.saga.declare import Step
from sagashop.saga.observers import Committed, Observer, StepSeen
from sagashop.store import batch
from sagashop.store.batch import Database, Script, Sql
from sagashop.store.book import Book, Keyed, canonical_uuid
from sagashop.store.errors import store_errors, store_errors_here
from sagashop.store.journal import DeadLetter, StepRecord
from sagashop.tracing import StepSpan, Tracing

Decide = Callable[[Book], Event | None]
"""What a step does, on the batch's rows: the event it emits, if any."""
StepKey = tuple[str, str]
_STEP_KEY = ("id", "order_id", "step")


@dataclass(frozen=True)
class _Claim:
    """A step to take for an order, and how it decides."""

    event: Event
    """The event handled (a command or the sweep makes one for the order)."""
    step: str
    handled: str
    decide: Decide
    emits: frozenset[EventName]
    gave_up: str | None = None
    """The step failed for good with this error: taken now, it keeps its event as a dead
    letter too."""

    @cached_property
    def key(self) -> StepKey:
        return canonical_uuid(self.event.order_id), self.step

    @property
    def event_id(self) -> str | None:
        """The event handled, if a step handles one from the bus (a command's step does not)."""
        return self.event.event_id if self.handled == self.event.name else None


@dataclass
class _Taken:
    """What a batch came to: the outcome of each claim, and which were taken now (with their
    step rows' ids) and which before."""

    outcomes: dict[StepKey, Event | None]
    fresh: dict[StepKey, int]
    replayed: dict[StepKey, int]
    book: Book


class StepLog:
    """The steps one service has taken and the events it gave up on, in its own database."""

    def __init__(
        self,
        service: str,
        records: type[StepRecord],
        dead_letters: type[DeadLetter],
        observers: Observer,
        tables: Sequence[Keyed] = (),
        database: Database | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.service = service
        self.records = records
        self.dead_letters = DeadLetters(service, dead_letters)
        self.observers = observers
        """Told of every committed batch: the relay publishes what it emitted, and so on."""
        self.tables = tuple(tables)
        """What the service's steps read and write (see `Book`)."""
        self.database = database or Database(service)
        """The service's cheap reads, and batches taken on its actor's thread."""
        self.tracing = tracing
        """A span per step, when tracing is on (see `sagashop.tracing`)."""
        self._steps = Keyed(records, by=("order_id",), key=("order_id",))

    async def run(self, chosen: Step, event: Event) -> Event | None:
        (outcome,) = await self.run_all([(chosen, event)])
        return outcome

    async def run_all(self, steps: Sequence[tuple[Step, Event]]) -> list[Event | None]:
        """Take several steps in one transaction; the outcome of each.

        Anything that goes wrong (a conflict, a poison event) rolls all of them back and is
        raised: the caller then takes them one at a time, where each failure is handled on its
        own and none is lost or taken twice."""
        return await self._take(_claims(steps))

    def run_all_here(
        self, steps: Sequence[tuple[Step, Event]], later: Callable[[Callable[[], None]], None]
    ) -> list[Event | None]:
        """`run_all` on the calling thread (where `database.here`: a SQLite file), with no
        hand-off; what follows the commit (publishing, waking readers) is handed to `later`,
        which runs it on the loop."""
        claims, spans = self._traced(_claims(steps))
        try:
            with store_errors_here():
                taken = self.database.run_here(lambda sql: self._batch(sql, claims))
        except BaseException as error:
            self._rolled_back(spans, error)
            raise
        later(lambda: self._after(claims, taken, spans))
        return [taken.outcomes[claim.key] for claim in claims]

    async def record(
        self, event: Event, step: str, handled: str, decide: Decide, emits: frozenset[EventName]
    ) -> Event | None:
        """Take a step that handles no event of the bus (`handled` says what: a command, the
        deadline), for the order `event` names; its outcome, or the one recorded before."""
        (outcome,) = await self.record_all([(event, step, handled, decide, emits)])
        return outcome

    async def record_all(
        self, steps: Sequence[tuple[Event, str, str, Decide, frozenset[EventName]]]
    ) -> list[Event | None]:
        """`record` for several steps, in one transaction."""
        return await self._take([_Claim(*taken) for taken in steps])

    async def give_up(self, chosen: Step, event: Event, error: BaseException) -> Event | None:
        """Keep the event as a dead letter and, for a step that can fail, close the step with
        its failure event, so the saga undoes what came before; both in one transaction."""
        text = f"{type(error).__name__}: {error}"
        if chosen.fails_as is None:
            bury = self.dead_letters.bury
            async with store_errors():
                await batch.run(self.service, lambda sql: bury(sql, event, chosen.name, text))
            seen = StepSeen(
                event.order_id,
                chosen.name,
                event.name,
                event.event_id,
                outcome=None,
                record_id=None,
                fresh=False,
                failed=True,
                request_id=event.request_id,
            )
            if self.tracing is not None:
                (span,) = self.tracing.steps(self.service, [(chosen.name, event)])
                span.taken(None, fresh=False, gave_up=True)
            self.observers.committed(Committed(self, (seen,)))
            return None
        reason = f"{self.service} failed: internal error ({text})"[:250]
        failure = event.follow(chosen.fails_as, reason)
        claim = _Claim(event, chosen.name, event.name, lambda _book: failure, chosen.emits, text)
        (outcome,) = await self._take([claim])
        return outcome

    async def _take(self, claims: Sequence[_Claim]) -> list[Event | None]:
        claims, spans = self._traced(claims)
        try:
            async with store_errors():
                taken = await batch.run(self.service, lambda sql: self._batch(sql, claims))
        except BaseException as error:
            self._rolled_back(spans, error)
            raise
        self._after(claims, taken, spans)
        return [taken.outcomes[claim.key] for claim in claims]

    def _after(
        self, claims: Sequence[_Claim], taken: _Taken, spans: Sequence[StepSpan] | None
    ) -> None:
        """Once the batch committed: what its steps asked for, then the observers."""
        taken.book.committed()
        seen = tuple(_seen(claims, taken))
        if spans is not None:
            for step, span in zip(seen, spans, strict=True):
                span.taken(step.outcome, step.fresh, step.failed)
        self.observers.committed(Committed(self, seen))

    def _traced(
        self, claims: Sequence[_Claim]
    ) -> tuple[Sequence[_Claim], Sequence[StepSpan] | None]:
        """With tracing on, a span for each claim, whose outcome is stamped with it."""
        if self.tracing is None:
            return claims, None
        spans = self.tracing.steps(self.service, [(claim.step, claim.event) for claim in claims])
        stamped = [
            claim
            if span.traceparent is None
            else replace(claim, decide=_stamping(claim.decide, span.traceparent))
            for claim, span in zip(claims, spans, strict=True)
        ]
        return stamped, spans

    @staticmethod
    def _rolled_back(spans: Sequence[StepSpan] | None, error: BaseException) -> None:
        for span in spans or ():
            span.rolled_back(error)

    def _batch(self, sql: Sql, claims: Sequence[_Claim]) -> Script[_Taken]:
        """The transaction (see the module's docstring)."""
        moment = datetime.now(UTC)
        keys = {claim.key for claim in claims}
        recorded = yield from self._recorded(sql, keys)
        fresh = _first_of_each([c for c in claims if c.key not in recorded])
        book = Book(self.tables, moment)
        yield from batch.load(sql, book, [claim.event for claim in fresh])
        outcomes: dict[StepKey, Event | None] = {
            key: None if outcome is None else Event.from_dict(outcome)
            for key, (_, outcome) in recorded.items()
        }
        for claim in fresh:
            outcomes[claim.key] = _decided(self.service, claim, book)
        yield from batch.save(sql, book)
        for claim in fresh:
            if claim.gave_up is not None:
                closed = outcomes[claim.key]
                closed_with = None if closed is None else str(closed.name)
                yield from self.dead_letters.bury(
                    sql, claim.event, claim.step, claim.gave_up, closed_with
                )
        ids: dict[StepKey, int] = {}
        if fresh:
            rows = [self._step_row(claim, outcomes[claim.key], moment) for claim in fresh]
            written = yield sql.insert_returning(self.records, rows, _STEP_KEY)
            ids = {(canonical_uuid(order), step): record_id for record_id, order, step in written}
        replayed = {key: recorded[key][0] for key in keys if key in recorded}
        return _Taken(outcomes, ids, replayed, book)

    def _recorded(self, sql: Sql, keys: set[StepKey]) -> Script[dict[StepKey, tuple[int, Any]]]:
        """The steps among `keys` taken before: their rows' ids and recorded outcomes."""
        if not keys:
            return {}
        orders = sorted({(order,) for order, _ in keys})
        found = yield sql.select(self._steps, orders, ("order_id", "step", "id", "outcome"))
        recorded = {}
        for order_id, step, record_id, outcome in found:
            if (key := (canonical_uuid(order_id), step)) in keys:
                recorded[key] = (record_id, batch.python_value(self.records, "outcome", outcome))
        return recorded

    def _step_row(self, claim: _Claim, outcome: Event | None, moment: datetime) -> dict[str, Any]:
        return {
            "order_id": claim.key[0],
            "step": claim.step,
            "handled": claim.handled,
            "outcome": None if outcome is None else outcome.to_dict(),
            "published": False,
            "handled_at": moment,
        }

    async def republish(self, order_id: str, step: str) -> Event | None:
        """Publish again what a step emitted (the order service re-drives a stalled saga so)."""
        recorded = await self.records.get_or_none(order_id=order_id, step=step)
        return None if recorded is None else self._replay(recorded)

    def _replay(self, recorded: StepRecord) -> Event | None:
        if recorded.outcome is None:
            return None
        outcome = Event.from_dict(recorded.outcome)
        seen = StepSeen(
            str(recorded.order_id),
            recorded.step,
            recorded.handled,
            event_id=None,
            outcome=outcome,
            record_id=recorded.id,
            fresh=False,
            request_id=outcome.request_id,
        )
        self.observers.committed(Committed(self, (seen,)))
        return outcome

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

    async def unpublished(self, older_than: datetime, limit: int) -> list[tuple[int, Event]]:
        rows = (
            await self.records.filter(published=False, handled_at__lt=older_than)
            .exclude(outcome=None)
            .order_by("id")
            .limit(limit)
        )
        return [(row.id, Event.from_dict(row.outcome)) for row in rows]

    async def count_unpublished(self) -> int:
        """What its steps emitted that is not on the bus yet (the relay's backlog, as stored)."""
        return await self.records.filter(published=False).exclude(outcome=None).count()

    async def mark_published(self, ids: Sequence[int]) -> None:
        await batch.set_where(self.service, self.records, "published", True, ids)


def _claims(steps: Sequence[tuple[Step, Event]]) -> list[_Claim]:
    return [
        _Claim(event, chosen.name, event.name, _deciding(chosen, event), chosen.emits)
        for chosen, event in steps
    ]


def _deciding(chosen: Step, event: Event) -> Decide:
    return lambda book: chosen.run(event, book)


def _stamping(decide: Decide, traceparent: str) -> Decide:
    """`decide`, its outcome passed on by the step's span."""

    def stamped(book: Book) -> Event | None:
        outcome = decide(book)
        return None if outcome is None else outcome.traced(traceparent)

    return stamped


def _decided(service: str, claim: _Claim, book: Book) -> Event | None:
    outcome = claim.decide(book)
    if outcome is not None and outcome.name not in claim.emits:
        raise TypeError(f"{service}.{claim.step} emitted undeclared {outcome.name}")
    return outcome


def _first_of_each(claims: Sequence[_Claim]) -> list[_Claim]:
    """One claim per (order, step): an event twice in a batch is taken once, by the first."""
    firsts: dict[StepKey, _Claim] = {}
    for claim in claims:
        firsts.setdefault(claim.key, claim)
    return list(firsts.values())


def _seen(claims: Sequence[_Claim], taken: _Taken) -> list[StepSeen]:
    """Each claim as observers see it: a claim twice in one batch (an event delivered twice)
    was taken by the first; the second, like one taken before, gives its outcome again."""
    seen: list[StepSeen] = []
    first: set[StepKey] = set()
    for claim in claims:
        fresh = claim.key in taken.fresh and claim.key not in first
        first.add(claim.key)
        record_id = taken.fresh.get(claim.key, taken.replayed.get(claim.key))
        seen.append(
            StepSeen(
                claim.event.order_id,
                claim.step,
                claim.handled,
                claim.event_id,
                taken.outcomes[claim.key],
                record_id,
                fresh,
                fresh and claim.gave_up is not None,
                claim.event.request_id,
            )
        )
    return seen
