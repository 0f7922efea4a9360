"""Steps taken in batches (`StepLog.run_all`, and the actor that falls back to one at a time):
one transaction for many events, and nothing lost or doubled when one of them goes wrong."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pykka
import pytest

from sagashop.actors.user import reserve_balance
from sagashop.events import Event, EventName, new_id
from sagashop.metrics import Metrics
from sagashop.saga import Service, Step, step
from sagashop.saga.actor import HandleEvents, ServiceActor
from sagashop.saga.loop import LoopBridge
from sagashop.saga.retry import RetryPolicy
from sagashop.store.book import Book
from tests.store.harness import Holdings, Purchase, Steps


def reserving(steps: Steps, *purchases: Purchase) -> list[tuple[Step, Event]]:
    chosen = steps.step("user", EventName.ORDER_CREATED)
    return [(chosen, purchase.created) for purchase in purchases]


async def test_a_batch_takes_each_step_as_one_at_a_time_would(steps: Steps) -> None:
    purchases = [await steps.purchase(balance=5_000, price=1_000) for _ in range(3)]

    await steps.within(steps.logs["user"].run_all(reserving(steps, *purchases)))

    for purchase in purchases:
        assert (await steps.holdings(purchase)).balance == 4_000
        assert await steps.held("user", purchase.order_id) == "reserved"
        assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.reserved")]
        [(_, emitted)] = await steps.unpublished("user", purchase.order_id)
        assert emitted.name is EventName.BALANCE_RESERVED


async def test_a_redelivered_event_in_a_batch_is_replayed_and_the_rest_taken(
    steps: Steps,
) -> None:
    before, fresh = [await steps.purchase(balance=5_000, price=1_000) for _ in range(2)]
    first = await steps.take("user", before.created)
    sent_before = steps.relay._queue.qsize()

    await steps.within(steps.logs["user"].run_all(reserving(steps, before, fresh)))

    assert (await steps.holdings(before)).balance == 4_000, "not taken twice"
    assert (await steps.holdings(fresh)).balance == 4_000
    assert await steps.taken("user", before.order_id) == [("reserve", "balance.reserved")]
    assert await steps.taken("user", fresh.order_id) == [("reserve", "balance.reserved")]
    assert first is not None
    assert steps.relay._queue.qsize() > sent_before, "the replayed outcome goes out again"


async def test_one_event_twice_in_a_batch_is_taken_once(steps: Steps) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)

    await steps.within(steps.logs["user"].run_all(reserving(steps, purchase, purchase)))

    assert (await steps.holdings(purchase)).balance == 4_000
    assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.reserved")]


class Poisoned:
    """The user service's reserve step, failing for one order as a bug would."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.attempts = 0

    def __call__(self, event: Event, book: Book) -> Event:
        if event.order_id == self.order_id:
            self.attempts += 1
            raise ZeroDivisionError("a bug that only this order meets")
        return reserve_balance(event, book)


def poisoned_user(steps: Steps, poison: Poisoned) -> Service:
    declared = steps.services["user"]
    reserve = declared.step_for(EventName.ORDER_CREATED)
    assert reserve is not None
    bad = step(reserve.name, reserve.on, poison, reserve.emits, reserve.fails_as)
    return replace(declared, steps=(bad, *declared.steps[1:]))


async def test_a_poison_event_rolls_its_whole_batch_back(steps: Steps) -> None:
    good, bad = [await steps.purchase(balance=5_000, price=1_000) for _ in range(2)]
    poison = Poisoned(bad.order_id)
    service = poisoned_user(steps, poison)
    batch = [(service.steps[0], good.created), (service.steps[0], bad.created)]

    with pytest.raises(ZeroDivisionError):
        await steps.within(steps.logs["user"].run_all(batch))

    assert (await steps.holdings(good)).balance == 5_000
    assert await steps.taken("user", good.order_id) == []


@pytest.fixture
def started() -> Iterator[list[pykka.ActorRef[ServiceActor]]]:
    """Actors a test starts, stopped after it."""
    refs: list[pykka.ActorRef[ServiceActor]] = []
    yield refs
    for ref in refs:
        ref.stop()


async def test_after_a_failed_batch_the_actor_takes_each_event_alone(
    steps: Steps, started: list[pykka.ActorRef[ServiceActor]], caplog: pytest.LogCaptureFixture
) -> None:
    before, poisoned, after = [await steps.purchase(balance=5_000, price=1_000) for _ in range(3)]
    poison = Poisoned(poisoned.order_id)
    loop = asyncio.get_running_loop()
    bridge = LoopBridge(loop, steps.store.context)
    fast = RetryPolicy(attempts=2, first_delay=0.001)
    service = poisoned_user(steps, poison)
    metrics = Metrics("pubsub", ["user"], saga_deadline=30)
    ref = ServiceActor.start(service, steps.logs["user"], bridge, fast, metrics.service(service))
    started.append(ref)
    handled = asyncio.Event()
    events = (before.created, poisoned.created, after.created)

    with caplog.at_level(logging.INFO, logger="sagashop.user"):
        ref.tell(HandleEvents(events, done=lambda: loop.call_soon_threadsafe(handled.set)))
        await asyncio.wait_for(handled.wait(), timeout=30)

    assert "a batch of 3 steps failed" in caplog.text
    assert poison.attempts == 1 + 2, "once in the batch, then as often as the policy allows"
    for purchase in (before, after):
        assert (await steps.holdings(purchase)).balance == 4_000
        assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.reserved")]
    assert await steps.taken("user", poisoned.order_id) == [("reserve", "balance.rejected")]
    [letter] = await steps.dead_letters("user", poisoned.order_id)
    assert "ZeroDivisionError" in letter["error"]
    assert (await steps.holdings(poisoned)).balance == 5_000
    counted = metrics.registry.get_sample_value
    user_reserve = {"service": "user", "step": "reserve"}
    assert counted("sagashop_steps_total", user_reserve) == 2, "not the batch rolled back"
    assert counted("sagashop_step_seconds_count", user_reserve) == 2
    assert counted("sagashop_dead_letters_total", {"service": "user"}) == 1


async def test_an_order_id_spelt_in_capitals_is_still_taken_once(steps: Steps) -> None:
    """A database may say a UUID back its own way (PostgreSQL does): the claim still finds its
    step, and the step acts, instead of being recorded as taken with nothing done."""
    purchase = await steps.purchase(balance=5_000, price=1_000)
    shouted = replace(purchase.created, order_id=purchase.order_id.upper())

    first = await steps.take("user", shouted)
    again = await steps.take("user", purchase.created)

    assert first is not None
    assert first.name == EventName.BALANCE_RESERVED
    assert again is not None
    assert again.event_id == first.event_id, "the recorded outcome, replayed"
    assert again.order_id == purchase.order_id, "read back in the id's one spelling"
    assert await steps.held("user", purchase.order_id) == "reserved"


def one_batch_of(steps: Steps, service: str, events: list[Event]) -> Any:
    chosen = [(steps.step(service, event.name), event) for event in events]
    return steps.within(steps.logs[service].run_all(chosen))


def for_new_orders(purchase: Purchase, name: EventName, *quantities: int) -> list[Event]:
    """Events of this purchase's user and item, each for an order of its own."""
    return [
        Event(name, new_id(), purchase.user_id, purchase.item_id, quantity=n, amount=1_000 * n)
        for n in quantities
    ]


@pytest.mark.parametrize("refused_first", [False, True], ids=["accepted first", "refused first"])
async def test_a_batch_mixing_what_a_player_can_and_cannot_afford_takes_exactly_the_first(
    steps: Steps, refused_first: bool
) -> None:
    purchase = await steps.purchase(balance=3_000, price=1_000)
    fits, too_much = for_new_orders(purchase, EventName.ORDER_CREATED, 2, 4)
    batch = [too_much, fits] if refused_first else [fits, too_much]

    outcomes = await one_batch_of(steps, "user", batch)

    names = [outcome.name for outcome in outcomes]
    assert names == (
        ["balance.rejected", "balance.reserved"]
        if refused_first
        else ["balance.reserved", "balance.rejected"]
    )
    assert (await steps.holdings(purchase)).balance == 1_000


@pytest.mark.parametrize(
    ("service", "cause", "sizes", "refused", "left"),
    [
        pytest.param(
            "item",
            EventName.INVENTORY_RESERVED,
            (2, 3),
            ("item.rejected", "item: out of stock: 1 left, 3 requested"),
            Holdings(balance=10_000, stock=1, free=20),
            id="an item's stock, smaller first",
        ),
        pytest.param(
            "item",
            EventName.INVENTORY_RESERVED,
            (3, 2),
            ("item.rejected", "item: out of stock: 0 left, 2 requested"),
            Holdings(balance=10_000, stock=0, free=20),
            id="an item's stock, larger first",
        ),
        pytest.param(
            "inventory",
            EventName.BALANCE_RESERVED,
            (15, 8),
            ("inventory.rejected", "inventory: bag is full: 5 free slots, 8 needed"),
            Holdings(balance=10_000, stock=3, free=5),
            id="a bag's free slots, larger first",
        ),
        pytest.param(
            "inventory",
            EventName.BALANCE_RESERVED,
            (8, 15),
            ("inventory.rejected", "inventory: bag is full: 12 free slots, 15 needed"),
            Holdings(balance=10_000, stock=3, free=12),
            id="a bag's free slots, smaller first",
        ),
    ],
)
async def test_a_batch_asking_for_more_than_there_is_gives_it_to_the_first(
    steps: Steps,
    service: str,
    cause: EventName,
    sizes: tuple[int, int],
    refused: tuple[str, str],
    left: Holdings,
) -> None:
    """An item of 3 in stock, and a new player's bag of 20 free slots."""
    purchase = await steps.purchase(stock=3)
    first, second = for_new_orders(purchase, cause, *sizes)

    outcomes = await one_batch_of(steps, service, [first, second])

    assert [(outcome.name, outcome.reason) for outcome in outcomes] == [
        (f"{service}.reserved", None),
        refused,
    ]
    assert await steps.holdings(purchase) == left
