"""Payment service: charges the order through a mock provider that declines a set share, and
every charge of the players marked as declined (a test control).

item.reserved                  charge the amount         -> payment.processed | .rejected
order.expired                  refund it, or void it     -> payment.refunded
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, TypedDict

from sagashop.errors import Forbidden
from sagashop.events import Event, EventName
from sagashop.names import Request, ServiceName
from sagashop.saga import Service, step
from sagashop.store.book import Book
from sagashop.store.facts import Table, table
from sagashop.store.payment import (
    PAYMENTS,
    Payment,
    PaymentDeadLetter,
    PaymentState,
    PaymentStep,
)
from sagashop.store.render import as_json

log = logging.getLogger("sagashop.payment")

DECLINED_PLAYERS_KEPT = 10_000
"""Players marked as declined that the mock remembers (the oldest go first): a bound on what a
caller who marks players in a loop can make it hold."""


@dataclass
class PaymentMock:
    """Stands in for a payment provider. With a seed, whether an order is declined depends only
    on the seed and the order id, so a run can be repeated whatever the arrival order."""

    failure_rate: float
    seed: int | None = None
    test_controls: bool = False
    """Whether `configure` may change the rate, and `decline_player` mark a player, while
    running (`--test-controls on`): a caller who can reach the bus could otherwise make every
    purchase fail."""
    declined_players: dict[str, None] = field(default_factory=dict)
    """Players whose every charge is declined, oldest first: like a provider's test card that
    is always refused, it fails one player's purchases and leaves the rate, and everyone else's,
    as they are."""

    def declines(self, order_id: str, user_id: str) -> bool:
        if user_id in self.declined_players:
            return True
        if self.seed is None:
            return random.random() < self.failure_rate
        return random.Random(f"{self.seed}:{order_id}").random() < self.failure_rate


def charge(event: Event, book: Book, *, payments: PaymentMock) -> Event:
    if book.get(PAYMENTS, event) is not None:  # voided: the order expired before the charge
        return event.follow(EventName.PAYMENT_REJECTED, "payment: the order expired first")
    if payments.declines(event.order_id, event.user_id):
        reason = "declined by the mock provider"
        _record(book, event, PaymentState.DECLINED, reason)
        return event.follow(EventName.PAYMENT_REJECTED, f"payment: {reason}")
    _record(book, event, PaymentState.CAPTURED)
    log.debug("order %s: charged %d to user %s", event.order_id, event.amount, event.user_id)
    return event.follow(EventName.PAYMENT_PROCESSED)


def refund(event: Event, book: Book) -> Event:
    """The order expired: give back what was charged, or void the charge if none came yet."""
    payment = book.get(PAYMENTS, event)
    if payment is None:
        _record(book, event, PaymentState.VOIDED, "the order expired before it was charged")
    elif payment.state is PaymentState.CAPTURED:
        book.set(payment, state=PaymentState.REFUNDED, reason="the order expired")
        log.debug("order %s: refunded %d to user %s", event.order_id, event.amount, event.user_id)
    return event.follow(EventName.PAYMENT_REFUNDED)


def _record(book: Book, event: Event, state: PaymentState, reason: str | None = None) -> None:
    book.insert(
        PAYMENTS, event, user_id=event.user_id, amount=event.amount, state=state, reason=reason
    )


async def configure(
    failure_rate: float, seed: int | None = None, *, payments: PaymentMock
) -> dict[str, Any]:
    """Change the mock's decline rate while running (tests set it per scenario)."""
    _test_control(payments, "setting the decline rate while running")
    payments.failure_rate, payments.seed = failure_rate, seed
    return {"failureRate": failure_rate, "seed": seed}


async def decline_player(user_id: str, *, payments: PaymentMock) -> dict[str, Any]:
    """Decline every charge of this player from now on (the monitor's "payment declined")."""
    _test_control(payments, "declining a player's charges")
    payments.declined_players[user_id] = None
    while len(payments.declined_players) > DECLINED_PLAYERS_KEPT:
        del payments.declined_players[next(iter(payments.declined_players))]
    return {"userId": user_id}


def _test_control(payments: PaymentMock, what: str) -> None:
    if not payments.test_controls:
        raise Forbidden(
            f"{what} is a test control, off unless the payment service runs with "
            "--test-controls on (TEST_CONTROLS=on)"
        )


async def settings(*, payments: PaymentMock) -> dict[str, Any]:
    return {"failureRate": payments.failure_rate, "seed": payments.seed}


class PaymentFacts(TypedDict):
    """What the audit reads of this service (see `sagashop.audit`)."""

    payments: Table


async def audit_facts() -> PaymentFacts:
    return {"payments": await table(Payment, "order_id", "state", "amount")}


async def order_state(order_id: str) -> dict[str, Any] | None:
    payment = await Payment.get_or_none(order_id=order_id)
    return None if payment is None else as_json(payment, "order_id", "user_id")


SERVICE = Service(
    name=ServiceName.PAYMENT,
    records=PaymentStep,
    dead_letters=PaymentDeadLetter,
    tables=(PAYMENTS,),
    steps=(
        step(
            "charge",
            on=[EventName.ITEM_RESERVED],
            run=charge,
            emits=[EventName.PAYMENT_PROCESSED, EventName.PAYMENT_REJECTED],
            fails_as=EventName.PAYMENT_REJECTED,
        ),
        step(
            "refund",
            on=[EventName.ORDER_EXPIRED],
            run=refund,
            emits=[EventName.PAYMENT_REFUNDED],
        ),
    ),
    commands={Request.CONFIGURE_PAYMENTS: configure, Request.DECLINE_PLAYER: decline_player},
    queries={
        Request.ORDER_STATE: order_state,
        Request.AUDIT_FACTS: audit_facts,
        Request.PAYMENT_SETTINGS: settings,
    },
)
