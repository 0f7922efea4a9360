"""The business rules are plain functions: no threads, Redis or database needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from sagashop.actors import inventory, item, notification, user
from sagashop.actors.order import (
    NUDGED_BY,
    SERVICE,
    Deadlines,
    Expire,
    Nudge,
    StepName,
    next_look,
    on_due,
    past_deadline,
)
from sagashop.actors.payment import PaymentMock
from sagashop.events import Event, EventName
from sagashop.store.order import OrderStatus, Owed


def test_a_user_can_pay_only_if_known_active_and_rich_enough() -> None:
    assert user.refusal(None, 10) == "unknown user"
    assert user.refusal(SimpleNamespace(balance=100, active=False), 10) == "user is inactive"
    assert user.refusal(SimpleNamespace(balance=9, active=True), 10) == (
        "balance too low: has 9, needs 10"
    )
    assert user.refusal(SimpleNamespace(balance=10, active=True), 10) is None


def test_items_fit_in_the_bag_up_to_its_free_slots() -> None:
    assert inventory.refusal(free=3, quantity=3) is None
    assert inventory.refusal(free=2, quantity=3) == "bag is full: 2 free slots, 3 needed"


def test_stock_is_needed_to_reserve_an_item() -> None:
    assert item.refusal(None, 1) == "unknown item"
    assert item.refusal(SimpleNamespace(stock=1), 2) == "out of stock: 1 left, 2 requested"
    assert item.refusal(SimpleNamespace(stock=2), 2) is None


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_a_seeded_payment_mock_declines_the_same_orders_every_time(rate: float) -> None:
    orders = [f"order-{n}" for n in range(2000)]
    first = [PaymentMock(rate, seed=7).declines(order) for order in orders]
    again = [PaymentMock(rate, seed=7).declines(order) for order in reversed(orders)][::-1]

    assert first == again
    assert abs(sum(first) / len(orders) - rate) < 0.05


def test_the_user_is_told_how_the_purchase_ended() -> None:
    sold = Event(EventName.ITEM_SOLD, "o", "u", "sword", quantity=2, amount=300)
    cancelled = sold.follow(EventName.ORDER_CANCELLED, "item: out of stock: 1 left, 2 requested")

    assert notification.message_for(sold) == (
        "order.completed",
        "Your purchase of 2 x item sword for 300 is complete.",
    )
    assert notification.message_for(cancelled) == (
        "order.cancelled",
        "Your purchase of 2 x item sword was cancelled and nothing was charged: "
        "item: out of stock: 1 left, 2 requested",
    )


@pytest.mark.parametrize(
    ("nudges", "seconds"),
    [(0, 5), (1, 10), (2, 20), (3, 20), (40, 20)],
)
def test_a_stalled_saga_is_asked_again_doubling_up_to_a_quarter_of_its_deadline(
    nudges: int, seconds: float
) -> None:
    assert Deadlines(saga=80, nudge_after=5).wait(nudges) == timedelta(seconds=seconds)


def test_a_short_deadline_still_waits_its_first_nudge() -> None:
    assert Deadlines(saga=8, nudge_after=5).wait(3) == timedelta(seconds=5)


START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _S(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("owes", "after", "expired"),
    [
        (Owed.OUTCOME, 29.999, False),
        (Owed.OUTCOME, 30, True),
        (Owed.OUTCOME, 3_600, True),
        (Owed.UNDOING, 3_600, False),
        (Owed.SETTLING, 3_600, False),
        (None, 3_600, False),
    ],
)
def test_only_a_saga_still_waiting_for_its_outcome_runs_out_of_time(
    owes: Owed | None, after: float, expired: bool
) -> None:
    order = SimpleNamespace(owes=owes, deadline_at=START + timedelta(seconds=30), backoff=0)
    assert past_deadline(order, START + timedelta(seconds=after)) is expired


@pytest.mark.parametrize(
    ("owes", "backoff", "looks_after"),
    [
        (Owed.OUTCOME, 0, 10),  # 2 x 5 s
        (Owed.OUTCOME, 2, 12),  # 20 s, but the deadline comes first
        (Owed.SETTLING, 2, 20),  # past the deadline nothing caps it but a quarter of it
    ],
)
def test_the_sweep_looks_again_later_but_never_past_a_running_sagas_deadline(
    owes: Owed, backoff: int, looks_after: float
) -> None:
    deadlines = Deadlines(saga=80, nudge_after=5)
    order = SimpleNamespace(owes=owes, deadline_at=START + timedelta(seconds=12), backoff=backoff)
    assert next_look(order, deadlines, START) == START + timedelta(seconds=looks_after)


DUE = START + timedelta(seconds=12)
"""When the orders below reach their deadline (12 s after START)."""


@pytest.mark.parametrize(
    ("owes", "status", "at", "backoff", "then"),
    [
        # A running saga is nudged by publishing order.created again, backing off from 5 s,
        (Owed.OUTCOME, OrderStatus.PENDING, 0, 0, Nudge(StepName.CREATE, START + _S(10))),
        # but never looked at past its deadline,
        (Owed.OUTCOME, OrderStatus.PENDING, 5, 1, Nudge(StepName.CREATE, DUE)),
        # where it expires.
        (Owed.OUTCOME, OrderStatus.PENDING, 12, 2, Expire()),
        (Owed.OUTCOME, OrderStatus.PENDING, 3_600, 9, Expire()),
        # An expired one is nudged by its order.expired until its services gave back their part;
        (Owed.UNDOING, OrderStatus.CANCELLED, 3_600, 0, Nudge(StepName.EXPIRE, DUE + _S(3_598))),
        # an ended one by its outcome, until each service settled its part.
        (Owed.SETTLING, OrderStatus.COMPLETED, 20, 1, Nudge(StepName.COMPLETE, START + _S(40))),
        (Owed.SETTLING, OrderStatus.CANCELLED, 20, 3, Nudge(StepName.CANCEL, START + _S(40))),
    ],
)
def test_a_due_order_is_nudged_by_the_step_that_moves_it_on_or_expires_at_its_deadline(
    owes: Owed, status: OrderStatus, at: float, backoff: int, then: Expire | Nudge
) -> None:
    """The sweep's whole decision, as a table: no database, no clock but the one given."""
    order = SimpleNamespace(owes=owes, status=status, deadline_at=DUE, backoff=backoff)
    assert on_due(order, Deadlines(saga=80, nudge_after=5), START + _S(at)) == then


def test_every_state_a_due_order_can_be_in_names_a_step_the_order_service_takes() -> None:
    """A renamed step would leave its stalled sagas nudged with nothing, until their deadline."""
    taken_on_events = {step.name for step in SERVICE.steps}
    taken_on_its_own = {StepName.CREATE, StepName.EXPIRE}  # placing an order; its deadline
    assert set(NUDGED_BY.values()) <= taken_on_events | taken_on_its_own
    ended = {OrderStatus.COMPLETED, OrderStatus.CANCELLED}
    assert set(NUDGED_BY) == {
        (Owed.OUTCOME, OrderStatus.PENDING),
        (Owed.UNDOING, OrderStatus.CANCELLED),
        *((Owed.SETTLING, status) for status in ended),
    }
