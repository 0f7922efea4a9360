"""What each endpoint answers, as pydantic models: the OpenAPI document's response schemas.

They describe the JSON the services already give (`store.render.as_json` of their rows, with
camelCase keys), and they forbid fields they do not name, so that a field added to an answer
without its model fails the schema-driven tests instead of going undocumented.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from sagashop.store.order import OrderStatus, Owed
from sagashop.store.payment import PaymentState
from sagashop.store.reservations import ReservationState


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class User(Answer):
    """The user."""

    id: UUID
    username: str
    balance: int
    active: bool
    createdAt: datetime


class Item(Answer):
    """The item."""

    id: UUID
    name: str
    price: int
    stock: int
    createdAt: datetime


class Catalogue(Answer):
    """A page of the items, oldest first, with their stock."""

    items: list[Item]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class SampleData(Answer):
    user: User
    items: list[Item]
    token: str | None = Field(
        None, description="a bearer token for the new user, when an operator asked (auth on)"
    )


class SampleDataCreated(Answer):
    """A new user and three new items."""

    success: bool
    message: str
    data: SampleData


class Order(Answer):
    """The order."""

    id: UUID
    userId: UUID
    itemId: UUID
    quantity: int
    unitPrice: int
    totalAmount: int
    status: OrderStatus
    failureReason: str | None = Field(description="which step failed and why, once cancelled")
    createdAt: datetime
    updatedAt: datetime
    deadlineAt: datetime = Field(description="when the saga is cancelled if it has not ended")
    owes: Owed | None = Field(description="what the order service still waits for, if anything")
    retryAt: datetime | None = Field(description="when the order service next asks again")
    nudges: int = Field(description="how often the order service asked again")


class Step(Answer):
    at: datetime
    service: str
    step: str
    handled: str = Field(description="the event (or request) the step handled")
    event: str | None = Field(description="the event it emitted, if any")
    reason: str | None = Field(description="why the saga is failing, on the failure path")
    kind: Literal["forward", "failure", "compensation"] = Field(
        description="a step forward, a refusal, or one that undoes an earlier step"
    )


class Held(Answer):
    state: ReservationState
    createdAt: datetime
    updatedAt: datetime


class MoneyHeld(Held):
    amount: int


class ItemsHeld(Held):
    quantity: int


class PaymentPart(Answer):
    amount: int
    state: PaymentState
    reason: str | None
    createdAt: datetime
    updatedAt: datetime


class NotificationPart(Answer):
    kind: str
    message: str
    createdAt: datetime


class Parts(Answer):
    """What each stateful service holds for the order (null: nothing yet)."""

    user: MoneyHeld | None = None
    inventory: ItemsHeld | None = None
    item: ItemsHeld | None = None
    payment: PaymentPart | None = None
    notification: NotificationPart | None = None


class OrderView(Order):
    """The order, its saga's steps in time order, and each service's part."""

    steps: list[Step]
    services: Parts
    unavailable: dict[str, str] = Field(description="services that did not answer, and why")


class OrderStatusView(Answer):
    """Where the order stands."""

    id: UUID
    status: OrderStatus
    failureReason: str | None


class Balance(Answer):
    """The user's balance."""

    userId: UUID
    balance: int


class BagRow(Answer):
    itemId: UUID
    quantity: int
    updatedAt: datetime


class Inventory(Answer):
    """The user's bag: its slots, and what is in it."""

    userId: UUID
    capacity: int
    free: int
    inventory: list[BagRow]


class UserOrders(Answer):
    """A page of the user's orders, newest first."""

    userId: UUID
    orders: list[Order]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class Notification(Answer):
    id: int
    orderId: UUID
    kind: str
    message: str
    createdAt: datetime


class Notifications(Answer):
    """A page of what the user was told, newest first."""

    userId: UUID
    notifications: list[Notification]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class DeadLetter(Answer):
    id: str = Field(description="the service and the letter's number, e.g. item-3")
    service: str
    orderId: UUID
    step: str
    event: dict[str, Any] = Field(description="the event that kept failing, as it travelled")
    error: str
    failures: int
    createdAt: datetime
    updatedAt: datetime
    replayedAt: datetime | None
    closedWith: str | None = Field(
        description="the failure event its step was closed with when given up (a step that can "
        "fail): the order was cancelled and what came before undone, so it is not replayed "
        "(409) and not counted as waiting; null: it waits for a fix and a replay"
    )


class DeadLetters(Answer):
    """Events whose step kept failing, oldest first, and the services that did not answer."""

    deadLetters: list[DeadLetter]
    unavailable: dict[str, str]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class Replayed(Answer):
    """The dead letter is being delivered again."""

    replayed: str
    orderId: UUID


class Backup(Answer):
    """A consistent copy of every service's SQLite file, taken online (README, "Backup")."""

    path: str = Field(description="the directory of the copies, on the server")
    files: list[str] = Field(description="the copies, one per service")
    tookMs: float = Field(description="milliseconds it took (the services paused as long)")


class AuditReport(Answer):
    """The conservation checks: ok, what was counted, and every violation."""

    ok: bool
    counts: dict[str, int]
    violations: list[str]


class Alive(Answer):
    """The process is up."""

    status: Literal["ok"]


class Readiness(Answer):
    """Each check "ok" or why not: Redis, each database, each actor."""

    ready: bool
    checks: dict[str, str]


class Faults(Answer):
    dropped: int
    duplicated: int
    rejected: dict[str, int] = Field(
        description="messages dropped from the bus, by reason: unsigned, bad_signature, "
        "unknown_key, stale, oversized, invalid, squatted_claim (a delivery claim taken back)"
    )


class Loop(Answer):
    maxLagMs: float


class Memory(Answer):
    rssBytes: int | None
    peakRssBytes: int


class Health(Answer):
    """Which services this process runs, whether it is ready (the same checks as `/readyz`),
    its bus's injected faults, its loop and memory."""

    status: Literal["ok", "unready"] = Field(
        description='"ok" exactly when /readyz answers 200; "unready" names nothing by itself: '
        "see checks"
    )
    checks: dict[str, str] = Field(description='each check "ok" or why not, as /readyz has them')
    node: str
    services: list[str]
    faults: Faults
    loop: Loop
    memory: Memory


class OrderList(Answer):
    """A page of the latest orders, newest first."""

    orders: list[Order]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class Summary(Answer):
    orders: dict[OrderStatus, int] = Field(description="how many orders have each status")
    inFlight: int = Field(description="orders still PENDING")
    cancelledBy: dict[str, int] = Field(
        description="cancelled orders by the service that refused them (order: they expired)"
    )
    deadLetters: int = Field(
        description="events given up on that wait for a replay (not replayed yet, not closed)"
    )
    unavailable: dict[str, str] = Field(description="services that did not answer, and why")


class PaymentSettings(Answer):
    failureRate: float = Field(description="the share of charges the mock declines")
    seed: int | None = Field(description="with a seed, an order's fate depends only on its id")
