"""Payment service: charges the order through a mock provider that declines a set share, and
every charge over its card limit.

item.reserved                  charge the amount         -> payment.processed | .rejected
order.expired                  refund it, or void it     -> payment.refunded
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
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

CARD_LIMIT = 100_000_000
"""The most the mock provider charges at once: a larger charge is declined whatever the rate, as
a card over its limit is. So anyone can watch a payment declined and undone (the monitor's "a
payment declined") on a purchase of their own, with no control and nobody else's purchase
touched; no test or bench buys near it."""
OVER_THE_LIMIT = f"declined by the mock provider: over the card limit of {CARD_LIMIT:,}"


@dataclass
class PaymentMock:
    """Stands in for a payment provider. With a seed, whether an order is declined depends only
    on the seed and the order id, so a run can be repeated whatever the arrival order."""

    failure_rate: float
    seed: int | None = None
    test_controls: bool = False
    """Whether `configure` may change the rate while running (`--test-controls on`): a caller
    who can reach the bus could otherwise make every purchase fail."""

    def declines(self, order_id: str) -> bool:
        if self.seed is None:
            return random.random() < self.failure_rate
        return random.Random(f"{self.seed}:{order_id}").random() < self.failure_rate


def charge(event: Event, book: Book, *, payments: PaymentMock) -> Event:
    if book.get(PAYMENTS, event) is not None:  # voided: the order expired before the charge
        return event.follow(EventName.PAYMENT_REJECTED, "payment: the order expired first")
    if event.amount > CARD_LIMIT:
        return _declined(book, event, OVER_THE_LIMIT)
    if payments.declines(event.order_id):
        return _declined(book, event, "declined by the mock provider")
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


def _declined(book: Book, event: Event, reason: str) -> Event:
    _record(book, event, PaymentState.DECLINED, reason)
    return event.follow(EventName.PAYMENT_REJECTED, f"payment: {reason}")


def _record(book: Book, event: Event, state: PaymentState, reason: str | None = None) -> None:
    book.insert(
        PAYMENTS, event, user_id=event.user_id, amount=event.amount, state=state, reason=reason
    )


async def configure(
    failure_rate: float, seed: int | None = None, *, payments: PaymentMock
) -> dict[str, Any]:
    """Change the mock's decline rate while running (tests set it per scenario)."""
    if not payments.test_controls:
        raise Forbidden(
            "setting the decline rate while running is a test control, off unless the payment "
            "service runs with --test-controls on (TEST_CONTROLS=on)"
        )
    payments.failure_rate, payments.seed = failure_rate, seed
    return {"failureRate": failure_rate, "seed": seed}


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
    commands={Request.CONFIGURE_PAYMENTS: configure},
    queries={
        Request.ORDER_STATE: order_state,
        Request.AUDIT_FACTS: audit_facts,
        Request.PAYMENT_SETTINGS: settings,
    },
)
