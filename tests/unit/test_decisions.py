"""Steps decide on the rows their batch read (`Book`), in plain Python: here with rows made up in
memory, no database. Events of one batch are decided in mailbox order, each seeing what the
ones before it did, and what they changed is written as the module `sagashop.store.book` says:
amounts added, states moved from what was read, new rows inserted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from sagashop.actors.inventory import BAG_SLOTS, fill_slots, reserve_slots
from sagashop.actors.item import reserve_stock, restock
from sagashop.actors.payment import CARD_LIMIT, OVER_THE_LIMIT, PAYMENTS, PaymentMock, charge
from sagashop.actors.user import refund_balance, reserve_balance
from sagashop.events import Event, EventName, new_id
from sagashop.store import inventory, item, user
from sagashop.store.book import Book
from sagashop.store.reservations import ReservationState

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
USER, ITEM = new_id(), new_id()


def purchase(name: EventName, quantity: int = 1, amount: int = 1_000) -> Event:
    return Event(name, new_id(), USER, ITEM, quantity=quantity, amount=amount)


def emitted(outcomes: list[Event]) -> list[tuple[str, str | None]]:
    return [(outcome.name, outcome.reason) for outcome in outcomes]


def user_book(balance: int) -> Book:
    book = Book((user.USERS, user.HOLDS), NOW)
    book.keep(user.USERS, [_user(balance)])
    return book


def _user(balance: int) -> dict[str, Any]:
    return {
        "id": USER,
        "username": "p",
        "balance": balance,
        "opening_balance": balance,
        "active": True,
        "created_at": NOW,
    }


@pytest.mark.parametrize("rich_first", [True, False], ids=["affordable first", "refused first"])
def test_two_purchases_of_one_player_in_one_batch_see_each_others_effect(
    rich_first: bool,
) -> None:
    book = user_book(balance=1_500)
    small, large = (
        purchase(EventName.ORDER_CREATED, amount=1_000),
        purchase(EventName.ORDER_CREATED, amount=1_200),
    )
    batch = [small, large] if rich_first else [large, small]

    outcomes = [reserve_balance(event, book) for event in batch]

    first_needed = batch[0].amount
    refused = f"user: balance too low: has {1_500 - first_needed}, needs {batch[1].amount}"
    assert emitted(outcomes) == [("balance.reserved", None), ("balance.rejected", refused)]
    [debit, hold] = sorted(book.changes(), key=lambda change: change.insert)
    assert (debit.table, debit.added, debit.changed) == (user.USERS, ("balance",), ())
    assert debit.added_to(debit.rows[0]) == [-first_needed], "the amount, not a balance"
    assert (hold.table, hold.insert, len(hold.rows)) == (user.HOLDS, True, 1)


def test_a_refund_adds_back_what_was_held_and_moves_the_hold_from_reserved() -> None:
    book = user_book(balance=0)
    refund = purchase(EventName.INVENTORY_RELEASED, amount=700)
    book.keep(user.HOLDS, [_hold(refund, ReservationState.RESERVED, amount=700, user_id=USER)])

    assert emitted([refund_balance(refund, book)]) == [("balance.released", None)]

    changes = {change.table: change for change in book.changes()}
    balance, hold = changes[user.USERS], changes[user.HOLDS]
    assert balance.added_to(balance.rows[0]) == [700]
    assert (hold.changed, hold.read(hold.rows[0], hold.changed)) == (("state",), ["reserved"])
    assert hold.values(hold.rows[0], ["state"]) == [ReservationState.RELEASED]
    assert hold.stamped == ("updated_at",)


def test_a_compensation_before_its_action_leaves_a_void_that_refuses_the_action() -> None:
    book = user_book(balance=5_000)
    refund = purchase(EventName.INVENTORY_RELEASED)
    created = Event(EventName.ORDER_CREATED, refund.order_id, USER, ITEM, 1, 1_000)

    outcomes = [refund_balance(refund, book), reserve_balance(created, book)]

    assert emitted(outcomes) == [
        ("balance.released", None),
        ("balance.rejected", "user: the order was cancelled first"),
    ]
    [void] = book.changes()
    assert (void.insert, void.rows[0].state) == (True, ReservationState.VOIDED)


@pytest.mark.parametrize("stocked_first", [True, False], ids=["in stock first", "refused first"])
def test_the_last_units_of_an_item_go_to_the_first_in_the_batch(stocked_first: bool) -> None:
    book = Book((item.ITEMS, item.HOLDS), NOW)
    book.keep(item.ITEMS, [_item(stock=2)])
    two, three = (
        purchase(EventName.INVENTORY_RESERVED, 2),
        purchase(EventName.INVENTORY_RESERVED, 3),
    )
    batch = [two, three] if stocked_first else [three, two]

    outcomes = [reserve_stock(event, book) for event in batch]

    if stocked_first:
        assert emitted(outcomes) == [
            ("item.reserved", None),
            ("item.rejected", "item: out of stock: 0 left, 3 requested"),
        ]
    else:
        assert emitted(outcomes) == [
            ("item.rejected", "item: out of stock: 2 left, 3 requested"),
            ("item.reserved", None),
        ]


def test_stock_put_back_is_added_to_what_is_there() -> None:
    book = Book((item.ITEMS, item.HOLDS), NOW)
    back = purchase(EventName.PAYMENT_REJECTED, 3)
    book.keep(item.ITEMS, [_item(stock=1)])
    book.keep(item.HOLDS, [_hold(back, ReservationState.RESERVED, quantity=3, item_id=ITEM)])

    restock(back, book)

    stock = next(c for c in book.changes() if c.table is item.ITEMS)
    assert stock.added_to(stock.rows[0]) == [3]
    assert stock.rows[0].stock == 4


@pytest.mark.parametrize("sizes", [(15, 6), (6, 15)], ids=["larger first", "smaller first"])
def test_a_players_first_bag_is_made_once_and_its_slots_go_to_the_first(
    sizes: tuple[int, int],
) -> None:
    book = Book((inventory.BAGS, inventory.HOLDS, inventory.PILES), NOW)
    first, second = (purchase(EventName.BALANCE_RESERVED, n) for n in sizes)

    outcomes = [reserve_slots(first, book), reserve_slots(second, book)]

    free = BAG_SLOTS - first.quantity
    assert emitted(outcomes) == [
        ("inventory.reserved", None),
        (
            "inventory.rejected",
            f"inventory: bag is full: {free} free slots, {second.quantity} needed",
        ),
    ]
    [bag] = [change for change in book.changes() if change.table is inventory.BAGS]
    assert (bag.insert, bag.rows[0].capacity, bag.rows[0].free) == (True, BAG_SLOTS, free)


def test_filling_adds_to_a_pile_or_starts_one() -> None:
    book = Book((inventory.BAGS, inventory.HOLDS, inventory.PILES), NOW)
    spent = purchase(EventName.BALANCE_SPENT, 2)
    book.keep(
        inventory.HOLDS,
        [_hold(spent, ReservationState.RESERVED, quantity=2, user_id=USER, item_id=ITEM)],
    )

    fill_slots(spent, book)

    [confirmed, pile] = book.changes()
    assert confirmed.values(confirmed.rows[0], ["state"]) == [ReservationState.CONFIRMED]
    assert (pile.table, pile.insert, pile.rows[0].quantity) == (inventory.PILES, True, 2)


def test_a_change_that_would_go_below_zero_is_a_bug_not_a_write() -> None:
    book = user_book(balance=10)
    [row] = book._rows[user.USERS].values()
    with pytest.raises(ValueError, match="below zero"):
        book.add(row, balance=-11)


def _item(stock: int) -> dict[str, Any]:
    return {
        "id": ITEM,
        "name": "sword",
        "price": 1_000,
        "stock": stock,
        "opening_stock": stock,
        "created_at": NOW,
    }


def _hold(event: Event, state: ReservationState, **columns: Any) -> dict[str, Any]:
    return {
        "order_id": event.order_id,
        "state": state,
        "created_at": NOW,
        "updated_at": NOW,
        **columns,
    }


def test_a_charge_past_the_card_limit_is_declined_whatever_the_rate() -> None:
    book = Book((PAYMENTS,), NOW)
    never = PaymentMock(0.0)
    up_to = purchase(EventName.ITEM_RESERVED, amount=CARD_LIMIT)
    past = purchase(EventName.ITEM_RESERVED, amount=CARD_LIMIT + 1)

    outcomes = [charge(up_to, book, payments=never), charge(past, book, payments=never)]

    assert emitted(outcomes) == [
        (EventName.PAYMENT_PROCESSED, None),
        (EventName.PAYMENT_REJECTED, f"payment: {OVER_THE_LIMIT}"),
    ]
