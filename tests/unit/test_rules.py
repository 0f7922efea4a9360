"""The business rules are plain functions: no threads, Redis or database needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from sagashop.actors import inventory, item, notification, user
from sagashop.actors.order import Deadlines, next_look, past_deadline
from sagashop.actors.payment import PaymentMock
from sagashop.events import Event, EventName
from sagashop.store.order import Owed


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
    assert Deadlines(saga=80, first_nudge=5).wait(nudges) == timedelta(seconds=seconds)


def test_a_short_deadline_still_waits_its_first_nudge() -> None:
    assert Deadlines(saga=8, first_nudge=5).wait(3) == timedelta(seconds=5)


START = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


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
    deadlines = Deadlines(saga=80, first_nudge=5)
    order = SimpleNamespace(owes=owes, deadline_at=START + timedelta(seconds=12), backoff=backoff)
    assert next_look(order, deadlines, START) == START + timedelta(seconds=looks_after)
