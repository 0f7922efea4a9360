"""User service: keeps each user's balance, and the money held for each order.

order.created                  reserve price x quantity  -> balance.reserved | balance.rejected
inventory.rejected | .released give back what was held   -> balance.released
order.completed                the held money is spent   -> balance.spent
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, TypedDict

from sagashop.events import Event, EventName
from sagashop.names import Request, ServiceName
from sagashop.saga import Service, StepLog, step
from sagashop.store.book import Book
from sagashop.store.facts import Table, table
from sagashop.store.render import as_json, found, shown
from sagashop.store.reservations import cancelled_first, confirm, hold, release
from sagashop.store.user import HOLDS, USERS, BalanceReservation, User, UserDeadLetter, UserStep

log = logging.getLogger("sagashop.user")


class Payer(Protocol):
    balance: int
    active: bool


def refusal(user: Payer | None, amount: int) -> str | None:
    """Why `user` cannot pay `amount`, or None if they can."""
    if user is None:
        return "unknown user"
    if not user.active:
        return "user is inactive"
    if user.balance < amount:
        return f"balance too low: has {user.balance}, needs {amount}"
    return None


def reserve_balance(event: Event, book: Book) -> Event:
    if cancelled_first(book, HOLDS, event):
        return event.follow(EventName.BALANCE_REJECTED, "user: the order was cancelled first")
    user = book.get(USERS, event)
    if (reason := refusal(user, event.amount)) is not None:
        return event.follow(EventName.BALANCE_REJECTED, f"user: {reason}")
    assert user is not None  # refusal names an unknown user
    book.add(user, balance=-event.amount)
    hold(book, HOLDS, event, user_id=event.user_id, amount=event.amount)
    log.debug("order %s: reserved %d of user %s", event.order_id, event.amount, event.user_id)
    return event.follow(EventName.BALANCE_RESERVED)


def refund_balance(event: Event, book: Book) -> Event:
    held = release(book, HOLDS, event, user_id=event.user_id, amount=event.amount)
    if held is not None and (user := book.get(USERS, event)) is not None:
        # Add back what was taken; never write back a remembered balance.
        book.add(user, balance=held.amount)
        log.debug("order %s: refunded %d to user %s", event.order_id, held.amount, held.user_id)
    return event.follow(EventName.BALANCE_RELEASED)


def spend_balance(event: Event, book: Book) -> Event:
    confirm(book, HOLDS, event)
    return event.follow(EventName.BALANCE_SPENT)


async def create_user(
    user_id: str, username: str, balance: int, active: bool = True
) -> dict[str, Any]:
    defaults = {"username": username, "balance": balance, "opening_balance": balance}
    user, _ = await User.get_or_create(id=user_id, defaults={**defaults, "active": active})
    return as_json(user, "opening_balance")


async def get_user(user_id: str) -> dict[str, Any]:
    return as_json(await found(User, user_id), "opening_balance")


async def get_users(user_ids: list[str], *, step_log: StepLog) -> dict[str, dict[str, Any]]:
    """Those of the users that exist, by id: one read for a batch of orders."""
    users = await step_log.database.lookup_all(USERS, [(user_id,) for user_id in user_ids])
    return {user["id"]: shown(User, user, "opening_balance") for user in users}


class UserFacts(TypedDict):
    """What the audit reads of this service (see `sagashop.audit`)."""

    users: Table
    held: Table


async def audit_facts() -> UserFacts:
    return {
        "users": await table(User, "id", "opening_balance", "balance"),
        "held": await table(BalanceReservation, "order_id", "state", "amount", "user_id"),
    }


async def order_state(order_id: str) -> dict[str, Any] | None:
    held = await BalanceReservation.get_or_none(order_id=order_id)
    return None if held is None else as_json(held, "order_id", "user_id")


SERVICE = Service(
    name=ServiceName.USER,
    records=UserStep,
    dead_letters=UserDeadLetter,
    tables=(USERS, HOLDS),
    steps=(
        step(
            "reserve",
            on=[EventName.ORDER_CREATED],
            run=reserve_balance,
            emits=[EventName.BALANCE_RESERVED, EventName.BALANCE_REJECTED],
            fails_as=EventName.BALANCE_REJECTED,
        ),
        step(
            "refund",
            on=[EventName.INVENTORY_REJECTED, EventName.INVENTORY_RELEASED],
            run=refund_balance,
            emits=[EventName.BALANCE_RELEASED],
        ),
        step(
            "spend",
            on=[EventName.ORDER_COMPLETED],
            run=spend_balance,
            emits=[EventName.BALANCE_SPENT],
            settling=True,
        ),
    ),
    commands={Request.CREATE_USER: create_user},
    queries={
        Request.GET_USER: get_user,
        Request.GET_USERS: get_users,
        Request.ORDER_STATE: order_state,
        Request.AUDIT_FACTS: audit_facts,
    },
)
