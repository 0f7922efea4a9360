"""The step log is also the outbox and the order's timeline: what a step emitted stays
unpublished in its row until the relay has put it on the bus and marked it so."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sagashop.events import Event, EventName
from sagashop.saga import StepLog
from sagashop.saga.outbox import Relay
from sagashop.store.user import HOLDS, USERS, UserDeadLetter, UserStep
from tests.store.harness import Steps
from tests.support import eventually


async def test_an_outcome_is_unpublished_until_it_is_marked_published(steps: Steps) -> None:
    purchase = await steps.purchase()
    reserved = await steps.take("user", purchase.created)
    [row] = await steps.step_rows("user", purchase.order_id)

    before = await steps.unpublished("user", purchase.order_id)
    await steps.within(steps.logs["user"].mark_published([row.id]))
    after = await steps.unpublished("user", purchase.order_id)

    assert before == [(row.id, reserved)]
    assert after == []
    [marked] = await steps.step_rows("user", purchase.order_id)
    assert marked.published is True


async def test_an_outcome_younger_than_the_cutoff_is_left_to_the_relay(steps: Steps) -> None:
    purchase = await steps.purchase()
    cutoff = datetime.now(UTC) - timedelta(seconds=30)
    await steps.take("user", purchase.created)

    unsent = await steps.within(steps.logs["user"].unpublished(cutoff, 100_000))

    assert [event for _, event in unsent if event.order_id == purchase.order_id] == []
    assert len(await steps.unpublished("user", purchase.order_id)) == 1


async def test_a_step_that_emits_nothing_has_nothing_to_publish(steps: Steps) -> None:
    purchase = await steps.purchase()

    outcome = await steps.take("order", purchase.then(EventName.NOTIFICATION_SENT))

    assert outcome is None
    assert await steps.taken("order", purchase.order_id) == [("close", None)]
    assert await steps.unpublished("order", purchase.order_id) == []


async def test_the_timeline_lists_the_steps_of_one_order_in_the_order_taken(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=2_000, price=1_000)
    other = await steps.purchase()
    await steps.take("user", purchase.created)
    await steps.take("user", other.created)
    await steps.take("user", purchase.then(EventName.INVENTORY_REJECTED, "inventory: bag is full"))
    await steps.take("user", purchase.created)  # a redelivery adds nothing

    timeline = await steps.within(steps.logs["user"].timeline(purchase.order_id))

    assert [{k: v for k, v in entry.items() if k != "at"} for entry in timeline] == [
        {
            "service": "user",
            "step": "reserve",
            "handled": "order.created",
            "event": "balance.reserved",
            "reason": None,
            "kind": "forward",
        },
        {
            "service": "user",
            "step": "refund",
            "handled": "inventory.rejected",
            "event": "balance.released",
            "reason": "inventory: bag is full",
            "kind": "compensation",
        },
    ]
    times = [datetime.fromisoformat(entry["at"]) for entry in timeline]
    assert times == sorted(times)


async def test_republishing_a_step_replays_its_outcome_and_an_untaken_one_nothing(
    steps: Steps,
) -> None:
    purchase = await steps.purchase()
    reserved = await steps.take("user", purchase.created)

    again = await steps.within(steps.logs["user"].republish(purchase.order_id, "reserve"))
    never = await steps.within(steps.logs["user"].republish(purchase.order_id, "spend"))

    assert again == reserved
    assert never is None


async def test_the_relay_publishes_an_outcome_and_marks_it_published(steps: Steps) -> None:
    published: list[Event] = []

    async def publish(events: Sequence[Event]) -> list[int]:
        published.extend(events)
        return [1] * len(events)

    relay = Relay(publish, resend_every=3600.0)
    log = StepLog("user", UserStep, UserDeadLetter, relay, (USERS, HOLDS))
    purchase = await steps.purchase()
    reserved = await steps.within(
        log.run(steps.step("user", EventName.ORDER_CREATED), purchase.created)
    )
    running = steps.spawn(relay.run([log]))
    try:
        await asyncio.wait_for(relay.flush(), timeout=10)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    assert reserved is not None
    assert [e for e in published if e.order_id == purchase.order_id] == [reserved]
    assert await steps.unpublished("user", purchase.order_id) == []


async def test_while_the_bus_is_away_the_backlog_counts_what_the_step_log_holds(
    steps: Steps,
) -> None:
    """A relay whose every publish fails (Redis away) still reads the step log: its backlog is
    what is unpublished there, not what it holds in memory (which it already tried)."""

    async def away(events: Sequence[Event]) -> list[int]:
        raise ConnectionError("the bus is away")

    relay = Relay(away, resend_every=0.05)
    log = StepLog("user", UserStep, UserDeadLetter, relay, (USERS, HOLDS))
    purchases = [await steps.purchase() for _ in range(3)]
    for purchase in purchases:
        await steps.within(log.run(steps.step("user", EventName.ORDER_CREATED), purchase.created))
    stored = await steps.within(log.count_unpublished())
    running = steps.spawn(relay.run([log]))
    try:
        await eventually(lambda: _now(relay.backlog), lambda backlog: backlog == stored)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert stored >= 3


async def _now(value: int) -> int:
    return value
