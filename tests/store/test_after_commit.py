"""`Book.after_commit`: what a step asks to run once its batch committed runs then, and never
for a batch rolled back, so a batch taken again one step at a time counts once."""

from __future__ import annotations

import pytest

from sagashop.events import Event, EventName
from sagashop.names import Request
from sagashop.saga import step
from sagashop.store.book import Book
from tests.store.harness import Purchase, Steps


async def test_what_a_step_asks_for_runs_once_it_committed(steps: Steps) -> None:
    purchase, ran = await steps.purchase(), []

    def act(book: Book) -> None:
        book.after_commit(lambda: ran.append("after"))
        ran.append("acting")

    await steps.within(
        steps.logs["order"].record(purchase.created, "try", "a test", act, frozenset())
    )

    assert ran == ["acting", "after"]


async def test_a_step_rolled_back_runs_nothing_after(steps: Steps) -> None:
    purchase, ran = await steps.purchase(), []

    def act(book: Book) -> None:
        book.after_commit(lambda: ran.append("after"))
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        await steps.within(
            steps.logs["order"].record(purchase.created, "try", "a test", act, frozenset())
        )

    assert ran == []


async def placed(steps: Steps) -> tuple[Purchase, Event]:
    """A PENDING order, and the payment that completes it."""
    purchase = await steps.purchase()
    created = purchase.created
    await steps.command(
        "order",
        Request.PLACE_ORDER,
        order_id=purchase.order_id,
        user_id=purchase.user_id,
        item_id=purchase.item_id,
        quantity=created.quantity,
    )
    return purchase, created.follow(EventName.PAYMENT_PROCESSED)


async def test_an_order_completed_in_a_batch_rolled_back_is_counted_once(steps: Steps) -> None:
    (_, paid), (other, _) = await placed(steps), await placed(steps)
    complete = steps.step("order", EventName.PAYMENT_PROCESSED)

    def boom(event: Event, book: Book) -> None:
        raise ZeroDivisionError("a bug in the same batch")

    poison = step("poison", on=[EventName.NOTIFICATION_SENT], run=boom)
    completed = steps.metrics.registry.get_sample_value("sagashop_sagas_completed_total")
    assert completed is not None

    with pytest.raises(ZeroDivisionError):
        await steps.within(steps.logs["order"].run_all([(complete, paid), (poison, other.created)]))
    await steps.take("order", paid)

    after = steps.metrics.registry.get_sample_value("sagashop_sagas_completed_total")
    assert after == completed + 1
