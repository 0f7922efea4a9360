"""A service's actor holds settling steps back for company (`Step.settling`), and never loses
or reorders them: a step log that records each transaction stands in for the database."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from sagashop.actors.user import SERVICE
from sagashop.events import Event, EventName
from sagashop.metrics import Metrics
from sagashop.saga import Step, actor
from sagashop.saga.actor import Drain, HandleEvents, Mailbox, ServiceActor
from sagashop.saga.loop import LoopBridge
from sagashop.saga.retry import RetryPolicy
from tests.support import eventually

PURCHASE = Event(EventName.ORDER_CREATED, "o", "u", "i", 1, 10)
CREATED, COMPLETED = PURCHASE, PURCHASE.follow(EventName.ORDER_COMPLETED)


@dataclass
class _Here:
    here: bool = True

    def close_here(self) -> None:
        pass


@dataclass
class Transactions:
    """Stands in for the service's step log: each transaction taken, as its events' names."""

    taken: list[list[str]] = field(default_factory=list)
    database: _Here = field(default_factory=_Here)

    def run_all_here(
        self, steps: Sequence[tuple[Step, Event]], later: Callable[[Callable[[], None]], None]
    ) -> list[Event | None]:
        self.taken.append([event.name for _, event in steps])
        return [None] * len(steps)


@dataclass
class Running:
    log: Transactions
    ref: Any
    mailbox: Mailbox

    def tell(self, *events: Event, done: Callable[[], None] | None = None) -> None:
        self.ref.tell(HandleEvents(events, done))

    async def drain(self) -> None:
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ref.tell(Drain(reply))
        await reply


@pytest.fixture
async def user_actor() -> AsyncIterator[Running]:
    log = Transactions()
    bridge = LoopBridge(asyncio.get_running_loop(), contextvars.Context)
    metrics = Metrics("pubsub", [SERVICE.name], saga_deadline=30).service(SERVICE)
    ref = ServiceActor.start(SERVICE, log, bridge, RetryPolicy(), metrics)
    try:
        yield Running(log, ref, ref.actor_inbox)
    finally:
        await asyncio.to_thread(ref.stop)


async def test_a_settling_step_joins_the_transaction_of_the_next_step_that_cannot_wait(
    user_actor: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actor, "SETTLE_WITHIN", 60.0)
    user_actor.tell(COMPLETED)
    user_actor.tell(CREATED)
    await user_actor.drain()
    assert user_actor.log.taken == [[EventName.ORDER_COMPLETED, EventName.ORDER_CREATED]]


async def test_a_settling_step_alone_is_held_then_taken_within_the_window(
    user_actor: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actor, "SETTLE_WITHIN", 0.3)
    user_actor.tell(COMPLETED)

    async def held() -> int:
        return user_actor.mailbox.holding()

    assert await eventually(held) == 1
    assert user_actor.mailbox.depth() == 1, "what is held is still waiting, for the metrics"
    assert user_actor.log.taken == []

    async def taken() -> list[list[str]]:
        return user_actor.log.taken

    assert await eventually(taken, within=5) == [[EventName.ORDER_COMPLETED]]
    assert user_actor.mailbox.holding() == 0


async def test_a_drain_takes_what_is_held_and_each_sender_hears_it_was_taken(
    user_actor: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actor, "SETTLE_WITHIN", 60.0)
    told: list[str] = []
    user_actor.tell(COMPLETED, done=lambda: told.append("first"))
    user_actor.tell(COMPLETED, done=lambda: told.append("again"))
    await user_actor.drain()
    assert user_actor.log.taken == [[EventName.ORDER_COMPLETED] * 2]
    assert told == ["first", "again"]
