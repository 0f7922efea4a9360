"""The business rules are plain functions: no threads, Redis or database needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sagashop.actors import inventory, item, notification, user
from sagashop.actors.payment import PaymentMock
from sagashop.events import Event, EventName


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
