"""Retention, against each real database: the step rows and replayed or closed dead letters of
orders the order service says settled, older than the cutoff, go in batches; a row of an order
not settled, an outcome not yet published, and anything newer stay."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sagashop.events import EventName
from sagashop.saga.retention import Retention, Settled
from tests.store.harness import Steps

KEEP = timedelta(days=30)


def settled_are(order_ids: set[str]) -> tuple[list[list[str]], Settled]:
    """A stand-in for the order service's answer, and what it was asked."""
    asked: list[list[str]] = []

    async def settled(candidates: Sequence[str], _before: datetime) -> list[str]:
        asked.append(list(candidates))
        return [order_id for order_id in candidates if order_id in order_ids]

    return asked, settled


async def test_only_the_steps_of_orders_settled_before_the_cutoff_go(steps: Steps) -> None:
    done, running = await steps.purchase(), await steps.purchase()
    for purchase in (done, running):
        await steps.take("user", purchase.created)
        await steps.take("user", purchase.then(EventName.ORDER_COMPLETED))
    log = steps.logs["user"]
    for purchase in (done, running):  # what the relay would have done
        rows = await steps.step_rows("user", purchase.order_id)
        await steps.within(log.mark_published([row.id for row in rows]))
    asked, settled = settled_are({done.order_id})
    retention = Retention(log, KEEP, settled)

    now = datetime.now(UTC)
    assert await steps.within(retention.prune(now)) == 0, "nothing is 30 days old yet"
    later = now + KEEP + timedelta(seconds=1)
    while await steps.within(retention.prune(later)):
        pass

    assert await steps.taken("user", done.order_id) == []
    assert len(await steps.taken("user", running.order_id)) == 2
    assert any(done.order_id in batch and running.order_id in batch for batch in asked)


async def test_an_outcome_not_yet_published_stays_whatever_its_age(steps: Steps) -> None:
    purchase = await steps.purchase()
    await steps.take("user", purchase.created)  # never marked published: the bus was away
    _asked, settled = settled_are({purchase.order_id})
    retention = Retention(steps.logs["user"], KEEP, settled)

    later = datetime.now(UTC) + KEEP + timedelta(seconds=1)
    while await steps.within(retention.prune(later)):
        pass

    assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.reserved")]


async def test_a_closed_letter_goes_with_age_and_a_waiting_one_stays(steps: Steps) -> None:
    """A letter whose step closed with its failure waits for nothing; one that waits for a
    replay stays however old, until it is replayed."""
    closed, waiting = await steps.purchase(), await steps.purchase()
    await steps.give_up("user", closed.created, RuntimeError("boom"))
    await steps.give_up("user", waiting.then(EventName.ORDER_COMPLETED), RuntimeError("boom"))
    _asked, settled = settled_are({closed.order_id, waiting.order_id})
    retention = Retention(steps.logs["user"], KEEP, settled)

    later = datetime.now(UTC) + KEEP + timedelta(seconds=1)
    while await steps.within(retention.prune(later)):
        pass

    assert await steps.dead_letters("user", closed.order_id) == []
    assert len(await steps.dead_letters("user", waiting.order_id)) == 1
