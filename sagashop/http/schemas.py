"""What each endpoint answers, as pydantic models: the OpenAPI document's response schemas.

They describe the JSON the services already give (`store.render.as_json` of their rows, with
camelCase keys), and they forbid fields they do not name, so that a field added to an answer
without its model fails the schema-driven tests instead of going undocumented. Every field is
described, and every model an endpoint answers has an example (`examples`, taken from a real
purchase: README's "Try it"); the tests check each example against its model.

A value that may be null is always sent (required and nullable), so a generated client has one
way to read it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from sagashop.actors import SERVICES
from sagashop.actors.order import StepName
from sagashop.events import EventName, StepKind
from sagashop.http.bodies import examples
from sagashop.names import Request, ServiceName
from sagashop.store.order import OrderStatus, Owed
from sagashop.store.payment import PaymentState
from sagashop.store.reservations import ReservationState

USER_ID = "abf12b21-9243-4119-aa78-a3e19ff93141"
ITEM_ID = "556b21ca-2bcc-4bb0-a055-2fbe99b45c5f"
ORDER_ID = "5d950d23-0359-4050-b1cc-7beb076a0320"
CREATED = "2026-12-04T18:34:44.944155+00:00"
ENDED = "2026-12-04T18:34:44.954929+00:00"
NEXT = "WyIyMDI2LTEyLTA0VDE4OjM0OjQ0LjkzODI1MCswMDowMCIsIjU1NmIyMWNhIl0"
NEXT_PAGE = "the cursor of the next page (`?cursor=`); null on the last"
UNAVAILABLE = "services that did not answer, and why (the rest of the answer leaves them out)"


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


USER = {
    "id": USER_ID,
    "username": "player-57a24def",
    "balance": 50000,
    "active": True,
    "createdAt": "2026-12-04T18:34:44.934244+00:00",
}


class User(Answer):
    """The user."""

    model_config = examples(USER)

    id: UUID = Field(description="the user's id")
    username: str = Field(description="the user's name, as given")
    balance: int = Field(description="money to spend, in the smallest unit (held money excluded)")
    active: bool = Field(description="an inactive user's purchases are refused")
    createdAt: datetime = Field(description="when the user was created")


ITEM = {
    "id": ITEM_ID,
    "name": "Legendary Sword",
    "price": 10000,
    "stock": 50,
    "createdAt": "2026-12-04T18:34:44.938250+00:00",
}


class Item(Answer):
    """The item."""

    model_config = examples(ITEM)

    id: UUID = Field(description="the item's id")
    name: str = Field(description="the item's name, as given")
    price: int = Field(description="the price of one, in the smallest unit")
    stock: int = Field(description="how many are left to sell (held ones excluded)")
    createdAt: datetime = Field(description="when the item was created")


class Catalogue(Answer):
    """A page of the items, oldest first, with their stock."""

    model_config = examples({"items": [{**ITEM, "stock": 49}], "next": NEXT})

    items: list[Item] = Field(description="the items of this page, oldest first")
    next: str | None = Field(description=NEXT_PAGE)


class SampleData(Answer):
    """What `/setup-test-data` made."""

    user: User = Field(description="the new user, with a balance of 50000")
    items: list[Item] = Field(description="the three new items")
    token: str | None = Field(
        description="a bearer token for the new user, when an operator asked (auth on); "
        "null with auth off"
    )


class SampleDataCreated(Answer):
    """A new user and three new items."""

    model_config = examples(
        {
            "success": True,
            "message": "test data created",
            "data": {
                "user": USER,
                "items": [
                    ITEM,
                    {
                        "id": "9d09b322-06db-4997-998a-388a23f68f30",
                        "name": "Dragon Shield",
                        "price": 5000,
                        "stock": 30,
                        "createdAt": "2026-12-04T18:34:44.939492+00:00",
                    },
                    {
                        "id": "294c2133-e15b-4231-befe-482d98b4b0b8",
                        "name": "Health Potion",
                        "price": 1000,
                        "stock": 100,
                        "createdAt": "2026-12-04T18:34:44.940501+00:00",
                    },
                ],
                "token": None,
            },
        }
    )

    success: bool = Field(description="always true: a failure is an error answer")
    message: str = Field(description='"test data created"')
    data: SampleData = Field(description="the new user and items")


ORDER = {
    "id": ORDER_ID,
    "userId": USER_ID,
    "itemId": ITEM_ID,
    "quantity": 1,
    "unitPrice": 10000,
    "totalAmount": 10000,
    "status": "PENDING",
    "failureReason": None,
    "createdAt": CREATED,
    "updatedAt": CREATED,
    "deadlineAt": "2026-12-04T18:35:14.944155+00:00",
    "owes": "outcome",
    "retryAt": "2026-12-04T18:34:49.944155+00:00",
    "nudges": 0,
}
COMPLETED = {
    **ORDER,
    "status": "COMPLETED",
    "updatedAt": ENDED,
    "owes": "settling",
    "retryAt": "2026-12-04T18:34:49.954929+00:00",
}
CANCELLED = {
    **ORDER,
    "status": "CANCELLED",
    "failureReason": "payment: declined by the mock provider",
    "updatedAt": ENDED,
    "owes": None,
    "retryAt": None,
}


class Order(Answer):
    """The order."""

    model_config = examples(ORDER, CANCELLED)

    id: UUID = Field(description="the order's id")
    userId: UUID = Field(description="the buyer")
    itemId: UUID = Field(description="the item bought")
    quantity: int = Field(description="how many")
    unitPrice: int = Field(description="the item's price when the order was placed")
    totalAmount: int = Field(description="quantity times unitPrice: what is charged")
    status: OrderStatus = Field(description="PENDING until the saga ends COMPLETED or CANCELLED")
    failureReason: str | None = Field(description="which step failed and why, once cancelled")
    createdAt: datetime = Field(description="when the order was placed")
    updatedAt: datetime = Field(description="when its status or bookkeeping last changed")
    deadlineAt: datetime = Field(description="when the saga is cancelled if it has not ended")
    owes: Owed | None = Field(description="what the order service still waits for, if anything")
    retryAt: datetime | None = Field(description="when the order service next asks again")
    nudges: int = Field(description="how often the order service asked again")


class Step(Answer):
    """One step a service took for the order."""

    at: datetime = Field(description="when the step was taken")
    service: str = Field(description="the service that took it")
    step: str = Field(description="the step's name in that service: reserve, charge, refund, …")
    handled: str = Field(description="the event (or request) the step handled")
    event: str | None = Field(description="the event it emitted, if any")
    reason: str | None = Field(description="why the saga is failing, on the failure path")
    kind: StepKind = Field(
        description="a step forward, a refusal, or one that undoes an earlier step"
    )


class Held(Answer):
    state: ReservationState = Field(
        description="reserved, then confirmed (the order completed) or released (cancelled)"
    )
    createdAt: datetime = Field(description="when it was reserved")
    updatedAt: datetime = Field(description="when its state last changed")


class MoneyHeld(Held):
    """The money the user service holds for the order."""

    amount: int = Field(description="the amount held")


class ItemsHeld(Held):
    """The slots, or the stock, a service holds for the order."""

    quantity: int = Field(description="how many are held")


class PaymentPart(Answer):
    """The charge the payment service made for the order."""

    amount: int = Field(description="the amount charged")
    state: PaymentState = Field(description="captured, declined, refunded or voided")
    reason: str | None = Field(description="why it was declined, if it was")
    createdAt: datetime = Field(description="when it was charged")
    updatedAt: datetime = Field(description="when its state last changed")


class NotificationPart(Answer):
    """What the user was told about the order."""

    kind: str = Field(description="order.completed or order.cancelled")
    message: str = Field(description="the message, as the user got it")
    createdAt: datetime = Field(description="when the user was told")


class Parts(Answer):
    """What each stateful service holds for the order; every service is named (null: nothing
    yet, or nothing any more)."""

    user: MoneyHeld | None = Field(description="the money held for the order")
    inventory: ItemsHeld | None = Field(description="the bag slots held for the order")
    item: ItemsHeld | None = Field(description="the stock held for the order")
    payment: PaymentPart | None = Field(description="the charge")
    notification: NotificationPart | None = Field(description="what the user was told")


def _declared(handled: EventName, emitted: EventName) -> tuple[str, str]:
    """The service and the step that turn `handled` into `emitted`, as they are declared."""
    return next(
        (service.name, step.name)
        for service in SERVICES
        for step in service.steps
        if handled in step.on and emitted in step.emits
    )


def _step(at: str, handled: EventName, emitted: EventName) -> dict[str, Any]:
    service, step = _declared(handled, emitted)
    return {
        "at": at,
        "service": service,
        "step": step,
        "handled": handled,
        "event": emitted,
        "reason": None,
        "kind": StepKind.FORWARD,
    }


PURCHASE = [
    {
        "at": CREATED,
        "service": ServiceName.ORDER,
        "step": StepName.CREATE,
        "handled": Request.PLACE_ORDER,
        "event": EventName.ORDER_CREATED,
        "reason": None,
        "kind": StepKind.FORWARD,
    },
    _step("2026-12-04T18:34:44.947686+00:00", EventName.ORDER_CREATED, EventName.BALANCE_RESERVED),
    _step(
        "2026-12-04T18:34:44.950126+00:00",
        EventName.BALANCE_RESERVED,
        EventName.INVENTORY_RESERVED,
    ),
    _step(
        "2026-12-04T18:34:44.951688+00:00", EventName.INVENTORY_RESERVED, EventName.ITEM_RESERVED
    ),
    _step("2026-12-04T18:34:44.953312+00:00", EventName.ITEM_RESERVED, EventName.PAYMENT_PROCESSED),
    _step(ENDED, EventName.PAYMENT_PROCESSED, EventName.ORDER_COMPLETED),
]
"""A purchase's steps forward, as a timeline shows them."""


def _held(at: str, **amount: int) -> dict[str, Any]:
    return {"state": "confirmed", "createdAt": at, "updatedAt": ENDED, **amount}


class OrderView(Order):
    """The order, its saga's steps in time order, and each service's part."""

    model_config = examples(
        {
            **COMPLETED,
            "steps": PURCHASE,
            "services": {
                "user": _held("2026-12-04T18:34:44.947686+00:00", amount=10000),
                "inventory": _held("2026-12-04T18:34:44.950126+00:00", quantity=1),
                "item": _held("2026-12-04T18:34:44.951688+00:00", quantity=1),
                "payment": {
                    "amount": 10000,
                    "state": "captured",
                    "reason": None,
                    "createdAt": "2026-12-04T18:34:44.953312+00:00",
                    "updatedAt": "2026-12-04T18:34:44.953312+00:00",
                },
                "notification": None,
            },
            "unavailable": {},
        }
    )

    steps: list[Step] = Field(description="every step any service took for it, in time order")
    services: Parts = Field(description="what each stateful service holds for it")
    unavailable: dict[str, str] = Field(description=UNAVAILABLE)


class OrderStatusView(Answer):
    """Where the order stands."""

    model_config = examples(
        {"id": ORDER_ID, "status": "COMPLETED", "failureReason": None},
        {
            "id": ORDER_ID,
            "status": "CANCELLED",
            "failureReason": "user: balance too low: has 500, needs 10000",
        },
    )

    id: UUID = Field(description="the order's id")
    status: OrderStatus = Field(description="PENDING until the saga ends COMPLETED or CANCELLED")
    failureReason: str | None = Field(description="which step failed and why, once cancelled")


class Balance(Answer):
    """The user's balance."""

    model_config = examples({"userId": USER_ID, "balance": 40000})

    userId: UUID = Field(description="the user's id")
    balance: int = Field(description="money to spend (held money excluded)")


class BagRow(Answer):
    """One kind of item in the bag."""

    itemId: UUID = Field(description="the item")
    quantity: int = Field(description="how many of it")
    updatedAt: datetime = Field(description="when it last changed")


class Bag(Answer):
    """The user's bag: its slots, and what is in it."""

    model_config = examples(
        {
            "userId": USER_ID,
            "capacity": 20,
            "free": 19,
            "inventory": [{"itemId": ITEM_ID, "quantity": 1, "updatedAt": ENDED}],
        }
    )

    userId: UUID = Field(description="the user's id")
    capacity: int = Field(description="how many slots the bag has (one per item bought)")
    free: int = Field(description="how many slots are neither used nor held")
    inventory: list[BagRow] = Field(description="what is in it, one row per kind of item")


class UserOrders(Answer):
    """A page of the user's orders, newest first."""

    model_config = examples({"userId": USER_ID, "orders": [COMPLETED], "next": None})

    userId: UUID = Field(description="the user's id")
    orders: list[Order] = Field(description="the orders of this page, newest first")
    next: str | None = Field(description=NEXT_PAGE)


NOTIFICATION = {
    "id": 1,
    "orderId": ORDER_ID,
    "kind": "order.completed",
    "message": f"Your purchase of 1 x item {ITEM_ID} for 10000 is complete.",
    "createdAt": "2026-12-04T18:34:44.956410+00:00",
}


class Notification(Answer):
    """One thing the user was told."""

    id: int = Field(description="the notification's number")
    orderId: UUID = Field(description="the order it is about")
    kind: str = Field(description="order.completed or order.cancelled")
    message: str = Field(description="the message, as the user got it")
    createdAt: datetime = Field(description="when the user was told")


class NotificationPage(Answer):
    """A page of what the user was told, newest first."""

    model_config = examples({"userId": USER_ID, "notifications": [NOTIFICATION], "next": None})

    userId: UUID = Field(description="the user's id")
    notifications: list[Notification] = Field(description="this page's, newest first")
    next: str | None = Field(description=NEXT_PAGE)


DEAD_LETTER = {
    "id": "item-3",
    "service": ServiceName.ITEM,
    "orderId": ORDER_ID,
    "step": _declared(EventName.INVENTORY_RESERVED, EventName.ITEM_RESERVED)[1],
    "event": {
        "name": "inventory.reserved",
        "order_id": ORDER_ID,
        "user_id": USER_ID,
        "item_id": ITEM_ID,
        "quantity": 1,
        "amount": 10000,
        "reason": None,
        "event_id": "0f4b7c1e-5d7a-4e8b-9c2d-3a6b8e1f2c4d",
        "causation_id": "7e2a9d4c-1b3f-4a6e-8d5c-9f0e1a2b3c4d",
        "occurred_at": "2026-12-04T18:34:44.950126+00:00",
        "version": 1,
        "request_id": "b1c2d3e4f5a6",
    },
    "error": "OperationalError: database is locked",
    "failures": 5,
    "createdAt": "2026-12-04T18:34:46.120511+00:00",
    "updatedAt": "2026-12-04T18:34:52.734902+00:00",
    "replayedAt": None,
    "closedWith": None,
}


class DeadLetter(Answer):
    """An event whose step kept failing, given up on."""

    id: str = Field(description="the service and the letter's number, e.g. item-3")
    service: str = Field(description="the service whose step kept failing")
    orderId: UUID = Field(description="the order the event is about")
    step: str = Field(description="the step that kept failing")
    event: dict[str, Any] = Field(description="the event that kept failing, as it travelled")
    error: str = Field(description="the last failure")
    failures: int = Field(description="how many times the step failed")
    createdAt: datetime = Field(description="when it was first given up on")
    updatedAt: datetime = Field(description="when it last failed")
    replayedAt: datetime | None = Field(description="when it was last replayed, if it was")
    closedWith: str | None = Field(
        description="the failure event its step was closed with when given up (a step that can "
        "fail): the order was cancelled and what came before undone, so it is not replayed "
        "(409) and not counted as waiting; null: it waits for a fix and a replay"
    )


class DeadLetterPage(Answer):
    """Events whose step kept failing, oldest first, and the services that did not answer."""

    model_config = examples({"deadLetters": [DEAD_LETTER], "unavailable": {}, "next": None})

    deadLetters: list[DeadLetter] = Field(description="this page's letters, oldest first")
    unavailable: dict[str, str] = Field(description=UNAVAILABLE)
    next: str | None = Field(description=NEXT_PAGE)


class Replayed(Answer):
    """The dead letter is being delivered again."""

    model_config = examples({"replayed": "item-3", "orderId": ORDER_ID})

    replayed: str = Field(description="the letter's id")
    orderId: UUID = Field(description="the order its event is about")


class Backup(Answer):
    """A consistent copy of every service's SQLite file, taken online (README, "Backup")."""

    model_config = examples(
        {
            "path": "data/backups/20261204T183444.995401Z",
            "files": [
                f"data/backups/20261204T183444.995401Z/{service}.sqlite3" for service in ServiceName
            ],
            "tookMs": 10.6,
        }
    )

    path: str = Field(description="the directory of the copies, on the server")
    files: list[str] = Field(description="the copies, one per service")
    tookMs: float = Field(description="milliseconds it took (the services paused as long)")


class AuditReport(Answer):
    """The conservation checks: ok, what was counted, and every violation."""

    model_config = examples(
        {
            "ok": True,
            "counts": {"users": 1, "items": 3, "orders": 1, "settled": 1, "in flight": 0},
            "violations": [],
        }
    )

    ok: bool = Field(description="true when there is no violation")
    counts: dict[str, int] = Field(description="what was counted: users, items, orders, …")
    violations: list[str] = Field(description="each broken rule, said in words")


class Alive(Answer):
    """The process is up."""

    model_config = examples({"status": "ok"})

    status: Literal["ok"] = Field(description='always "ok"')


CHECKS = {
    "redis": "ok",
    "database order": "ok",
    "database user": "ok",
    "actor order": "ok",
    "actor user": "ok",
}


class Readiness(Answer):
    """Each check "ok" or why not: Redis, each database, each actor."""

    model_config = examples(
        {"ready": True, "checks": CHECKS},
        {"ready": False, "checks": {**CHECKS, "actor user": "stopped"}},
    )

    ready: bool = Field(description="true when every check is ok")
    checks: dict[str, str] = Field(description='each check by name: "ok", or why not')


class Faults(Answer):
    """What this process's bus dropped, doubled or refused."""

    dropped: int = Field(description="messages the fault switch dropped (tests and chaos runs)")
    duplicated: int = Field(description="messages the fault switch sent twice")
    rejected: dict[str, int] = Field(
        description="messages dropped from the bus, by reason: unsigned, bad_signature, "
        "unknown_key, stale, oversized, invalid, squatted_claim (a delivery claim taken back)"
    )


class Loop(Answer):
    """How the process's event loop is doing."""

    maxLagMs: float = Field(description="the longest the loop kept a ready task waiting, in ms")


class Memory(Answer):
    """The process's memory."""

    rssBytes: int | None = Field(description="its resident set now (null where unknown)")
    peakRssBytes: int = Field(description="the most it ever had resident")


class Health(Answer):
    """Which services this process runs, whether it is ready (the same checks as `/readyz`),
    its bus's injected faults, its loop and memory."""

    model_config = examples(
        {
            "status": "ok",
            "checks": CHECKS,
            "node": "vm-16545-8af2c007",
            "services": [ServiceName.ORDER, ServiceName.USER],
            "faults": {"dropped": 0, "duplicated": 0, "rejected": {}},
            "loop": {"maxLagMs": 0.2},
            "memory": {"rssBytes": 102899712, "peakRssBytes": 102899712},
        }
    )

    status: Literal["ok", "unready"] = Field(
        description='"ok" exactly when /readyz answers 200; "unready" names nothing by itself: '
        "see checks"
    )
    checks: dict[str, str] = Field(description='each check "ok" or why not, as /readyz has them')
    node: str = Field(description="this process's name on the bus")
    services: list[str] = Field(description="the services this process runs")
    faults: Faults = Field(description="what its bus dropped, doubled or refused")
    loop: Loop = Field(description="its event loop")
    memory: Memory = Field(description="its memory")


class OrderList(Answer):
    """A page of the latest orders, newest first."""

    model_config = examples({"orders": [COMPLETED], "next": NEXT})

    orders: list[Order] = Field(description="the orders of this page, newest first")
    next: str | None = Field(description=NEXT_PAGE)


class OrderCounts(Answer):
    """How many orders have each status (every status named, 0 where none)."""

    PENDING: int = Field(description="orders whose saga is running")
    COMPLETED: int = Field(description="orders completed")
    CANCELLED: int = Field(description="orders cancelled")


class Summary(Answer):
    """The monitor's counters: orders by status, cancellations by service, dead letters."""

    model_config = examples(
        {
            "orders": {"PENDING": 2, "COMPLETED": 40, "CANCELLED": 5},
            "inFlight": 2,
            "cancelledBy": {"payment": 4, "item": 1},
            "deadLetters": 0,
            "unavailable": {},
        }
    )

    orders: OrderCounts = Field(description="how many orders have each status")
    inFlight: int = Field(description="orders still PENDING")
    cancelledBy: dict[str, int] = Field(
        description="cancelled orders by the service that refused them (order: they expired)"
    )
    deadLetters: int = Field(
        description="events given up on that wait for a replay (not replayed yet, not closed)"
    )
    unavailable: dict[str, str] = Field(description=UNAVAILABLE)


class PaymentSettings(Answer):
    """The payment mock's decline rate."""

    model_config = examples({"failureRate": 0.1, "seed": None}, {"failureRate": 0.25, "seed": 7})

    failureRate: float = Field(description="the share of charges the mock declines")
    seed: int | None = Field(description="with a seed, an order's fate depends only on its id")
