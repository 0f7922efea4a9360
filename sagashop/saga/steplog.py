"""Exactly-once effects on at-least-once delivery: `StepLog` is the one way any service takes a
saga step. What a step emits is kept in its step row, and `sagashop.saga.outbox` publishes it.

A batch of steps is one transaction (`sagashop.store.batch`): it reads which of the batch's
(order, step) pairs were taken before, the rows the others touch (`Book`), lets each step decide
on those rows in mailbox order, writes what changed, and inserts one step row per step taken,
with its outcome. The (order, step) key is unique, so if another process took a step meanwhile
the insert fails, the whole batch rolls back, and taken again it finds the step done. A step
taken before is not taken again: its recorded outcome is published once more, so a redelivery
heals a loss further down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sagashop.events import Event, EventName, kind_of
from sagashop.monitor.feed import StepFeed
from sagashop.saga.declare import Step
from sagashop.saga.outbox import Relay
from sagashop.saga.watch import StepWatch
from sagashop.store import batch
from sagashop.store.batch import Database, Script, Sql
from sagashop.store.book import Book, Keyed, canonical_uuid
from sagashop.store.errors import store_errors, store_errors_here
from sagashop.store.journal import DeadLetter, StepRecord
from sagashop.store.render import as_json, found, now

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
        relay: Relay,
        tables: Sequence[Keyed] = (),
        feed: StepFeed | None = None,
        database: Database | None = None,
    ) -> None:
        self.service = service
        self.records = records
        self.dead_letters = dead_letters
        self.relay = relay
        self.tables = tuple(tables)
        """What the service's steps read and write (see `Book`)."""
        self.feed = feed
        """Where the monitor page hears of each committed step (none in the store tests)."""
        self.watch = StepWatch()
        self.database = database or Database(service)
        """The service's cheap reads, and batches taken on its actor's thread."""
        self.log = logging.getLogger(f"sagashop.{service}")
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
        claims = _claims(steps)
        with store_errors_here():
            taken = self.database.run_here(lambda sql: self._batch(sql, claims))
        later(lambda: self._after(claims, taken))
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
            async with store_errors():
                await batch.run(self.service, lambda sql: self._bury(sql, event, chosen.name, text))
            if self.log.isEnabledFor(logging.DEBUG):
                self._log_step(event.order_id, chosen.name, event.name, event.event_id, "failed")
            return None
        reason = f"{self.service} failed: internal error ({text})"[:250]
        failure = event.follow(chosen.fails_as, reason)
        claim = _Claim(event, chosen.name, event.name, lambda _book: failure, chosen.emits, text)
        (outcome,) = await self._take([claim])
        return outcome

    async def _take(self, claims: Sequence[_Claim]) -> list[Event | None]:
        async with store_errors():
            taken = await batch.run(self.service, lambda sql: self._batch(sql, claims))
        self._after(claims, taken)
        return [taken.outcomes[claim.key] for claim in claims]

    def _after(self, claims: Sequence[_Claim], taken: _Taken) -> None:
        """Once the batch committed: what it asked for, publishing what it emitted (and again
        what the steps taken before had), waking who waits, telling the monitor."""
        taken.book.committed()
        for key, record_id in taken.fresh.items():
            self._committed(record_id, key[0], taken.outcomes[key])
        for key, record_id in taken.replayed.items():
            if (outcome := taken.outcomes[key]) is not None:
                self.relay.send(self, record_id, outcome)
        if self.feed is not None and self.feed.listening:
            self._show(self.feed, claims, taken)
        if self.log.isEnabledFor(logging.DEBUG):  # hundreds of steps a second: usually off
            self._log_steps(claims, taken)

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
                yield from self._bury(sql, claim.event, claim.step, claim.gave_up)
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

    def _bury(self, sql: Sql, event: Event, step: str, error: str) -> Script[None]:
        """Keep the event as the dead letter of its (order, step), counting the failures."""
        moment = datetime.now(UTC)
        letter = {
            "order_id": canonical_uuid(event.order_id),
            "step": step,
            "event": event.to_dict(),
            "error": error,
            "failures": 1,
            "created_at": moment,
            "updated_at": moment,
            "replayed_at": None,
        }
        again = {"event": "excluded", "error": "excluded", "updated_at": "excluded"}
        again |= {"failures": '{row}."failures" + 1', "replayed_at": "NULL"}
        yield sql.upsert(self.dead_letters, letter, ("order_id", "step"), again)

    def _log_steps(self, claims: Sequence[_Claim], taken: _Taken) -> None:
        """A line per claim; a claim twice in one batch (an event delivered twice) was taken
        once, by the first."""
        seen: set[StepKey] = set()
        for c in claims:
            outcome = "already taken" if c.key in seen else _outcome(c, taken)
            seen.add(c.key)
            self._log_step(c.event.order_id, c.step, c.handled, c.event_id, outcome)

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

    def _show(self, feed: StepFeed, claims: Sequence[_Claim], taken: _Taken) -> None:
        """Tell the monitor of each step this batch took (a claim twice in it was taken once)."""
        shown: set[StepKey] = set()
        for claim in claims:
            if claim.key in taken.fresh and claim.key not in shown:
                shown.add(claim.key)
                outcome = taken.outcomes[claim.key]
                feed.taken(self.service, claim.event.order_id, claim.step, claim.handled, outcome)

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
        await batch.set_where(self.service, self.records, "published", True, ids)


def _claims(steps: Sequence[tuple[Step, Event]]) -> list[_Claim]:
    return [
        _Claim(event, chosen.name, event.name, _deciding(chosen, event), chosen.emits)
        for chosen, event in steps
    ]


def _deciding(chosen: Step, event: Event) -> Decide:
    return lambda book: chosen.run(event, book)


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


def _outcome(claim: _Claim, taken: _Taken) -> str:
    """What a claim came to, for its log line: the event it emitted (or nothing), the step was
    taken before, or it failed for good."""
    if claim.key not in taken.fresh:
        return "already taken"
    if claim.gave_up is not None:
        return "failed"
    emitted = taken.outcomes[claim.key]
    return "nothing" if emitted is None else emitted.name
