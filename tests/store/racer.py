"""A second writer for the race tests, in a process of its own: it opens one service's store (as a
replica would), takes a batch of that service's steps in one transaction, and holds the
transaction open a while after its first decision, as a slow batch would. Once its store is
open it says "ready" and waits for a line on its input, so that the racers start together; then
it prints, as JSON, what each step emitted and when it tried, got in and finished.

    python -m tests.store.racer SERVICE URL HOLD_SECONDS EVENTS_JSON
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import replace
from typing import Any

from sagashop.actors import SERVICES
from sagashop.actors.order import Deadlines
from sagashop.actors.payment import PaymentMock
from sagashop.bootstrap import Dependencies
from sagashop.events import Event
from sagashop.metrics import Metrics
from sagashop.saga import Step, StepLog
from sagashop.saga.outbox import Relay
from sagashop.saga.retry import RetryPolicy
from sagashop.saga.watch import StepWatch
from sagashop.store import Store
from sagashop.store.book import Book
from sagashop.store.errors import StoreConflict


def holding(chosen: Step, hold: float, moments: dict[str, float]) -> Step:
    """The step, deciding as it does, then keeping its transaction open `hold` seconds once."""

    def decide(event: Event, book: Book) -> Event | None:
        moments.setdefault("inside", time.time())
        outcome = chosen.run(event, book)
        if "held" not in moments:
            time.sleep(hold)
            moments["held"] = time.time()
        return outcome

    return replace(chosen, run=decide)


async def race(service: str, url: str, hold: float, events: list[Event]) -> dict[str, Any]:
    declared = next(s for s in SERVICES if s.name == service)
    store = Store({service: url}, {service: declared.models})
    relay = Relay(_nowhere)
    log = StepLog(service, declared.records, declared.dead_letters, relay, declared.tables)
    sagas = Metrics("pubsub", [service], 30).sagas
    deps = Dependencies(_nobody, log, StepWatch(), PaymentMock(0.0), Deadlines(), sagas)
    bound = declared.bind(deps.by_name())
    moments: dict[str, float] = {}
    attempts = 0

    async def take() -> list[Event | None]:
        nonlocal attempts
        attempts += 1
        steps = []
        for event in events:
            chosen = bound.step_for(event.name)
            assert chosen is not None
            steps.append((holding(chosen, hold, moments), event))
        return await log.run_all(steps)

    loop = asyncio.get_running_loop()
    await loop.create_task(store.open(), context=store.context())
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        moments["tried"] = time.time()
        outcomes = await loop.create_task(_retried(take), context=store.context())
        moments["done"] = time.time()
    finally:
        await loop.create_task(store.close(), context=store.context())
    return {
        "outcomes": [None if o is None else o.to_dict() for o in outcomes],
        "moments": moments,
        "attempts": attempts,
    }


async def _retried(take: Any) -> list[Event | None]:
    """As an actor does: a conflict (another writer got there first) takes the batch again."""
    policy = RetryPolicy()
    for _ in range(policy.conflicts):
        try:
            return await take()  # type: ignore[no-any-return]
        except StoreConflict:
            await asyncio.sleep(policy.first_delay)
    return await take()  # type: ignore[no-any-return]


async def _nowhere(events: Any) -> list[int]:
    return [1] * len(events)


async def _nobody(*asked: Any) -> Any:
    raise AssertionError(f"a racing step asked another service: {asked}")


if __name__ == "__main__":
    service, url, hold, raw = sys.argv[1:]
    events = [Event.from_dict(e) for e in json.loads(raw)]
    print(json.dumps(asyncio.run(race(service, url, float(hold), events))))
