"""Order service: where a purchase starts, where it ends, and what makes sure it does end.

    place_order (POST /orders)     price it, open it PENDING -> order.created
    payment.processed              complete it               -> order.completed
    balance.rejected | .released   cancel it, with why       -> order.cancelled
    notification.sent              close it: nothing is owed
    sweep (every second or so)     ask again for what is owed, publishing the last event again;
                                   end a saga past its deadline -> order.expired

Until an order is closed the service knows what it is still owed (`Order.owes`) and, past
`retry_at`, nudges it: publishes its last event again (`on_due`); every service that already
acted replays its recorded outcome, so the saga picks up wherever it was lost. `nudges` counts
them, `backoff` those since what is owed last changed (each waits twice as long). An order
past its deadline is cancelled at once, and its undoing starts from the last step backwards:
payment refunds or voids, then item, inventory and user give back what they hold, each
recording a void where nothing was held yet, so a late action is refused rather than held for
an order that is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, Protocol, TypedDict
from uuid import UUID

from tortoise.expressions import RawSQL

from sagashop.errors import Conflict, InvalidRequest, NotFound
from sagashop.events import REQUEST_ID, TRACEPARENT, Event, EventName, refused_by
from sagashop.metrics import Sagas
from sagashop.names import Request, ServiceName
from sagashop.saga import Service, StepLog, retention, step
from sagashop.saga.watch import StepWatch
from sagashop.store.book import Book, Row, canonical_uuid, values
from sagashop.store.errors import StoreUnavailable
from sagashop.store.facts import Table, table
from sagashop.store.order import ORDERS, Order, OrderDeadLetter, OrderStatus, OrderStep, Owed
from sagashop.store.pages import BY_ID, NEWEST_FIRST, PAGE, Position, page
from sagashop.store.render import as_json, now, shown

log = logging.getLogger("sagashop.order")

Ask = Callable[[str, str, Mapping[str, Any]], Awaitable[Any]]


class StepName(StrEnum):
    """The order service's steps, as its step log names them: two taken by its own work
    (placing an order, its deadline), three on events (the declarations below). The sweep
    publishes a step's outcome again by this name, so the declarations and `NUDGED_BY` both
    take it from here."""

    CREATE = "create"
    EXPIRE = "expire"
    COMPLETE = "complete"
    CANCEL = "cancel"
    CLOSE = "close"


SWEEP_BATCH = 200
LOOK_AGAIN = 0.5
"""Seconds between reads of an order a client waits for, when no step here woke the wait."""


@dataclass(frozen=True)
class Deadlines:
    """How long a saga may take, and how often a stalled one is looked at (backing off)."""

    saga: float = 30.0
    nudge_after: float = 5.0

    def wait(self, backoff: int) -> timedelta:
        """Doubling from the first nudge, but never past a quarter of the deadline: a saga that
        lost an event near its end should not wait longer than the deadline gave it."""
        longest = max(self.nudge_after, self.saga / 4)
        return timedelta(seconds=min(self.nudge_after * 2 ** min(backoff, 16), longest))


async def place_orders(
    orders: Sequence[Mapping[str, Any]],
    *,
    ask: Ask,
    step_log: StepLog,
    deadlines: Deadlines,
    sagas: Sagas,
) -> list[Any]:
    """Place the orders waiting together (each `order_id`, `user_id`, `item_id`, `quantity`),
    in one transaction; an answer for each: the order, or why not.

    The users and items are read first, so an unknown one is a 404 and no saga starts. Placing
    an order id again opens nothing new: it answers with the order placed then (read back; a new
    order is answered from what was written, without reading it again)."""
    users, items = await asyncio.gather(
        ask(
            ServiceName.USER,
            Request.GET_USERS,
            {"user_ids": sorted({o["user_id"] for o in orders})},
        ),
        ask(
            ServiceName.ITEM,
            Request.GET_ITEMS,
            {"item_ids": sorted({o["item_id"] for o in orders})},
        ),
    )
    answers: list[Any] = [_unknown(order, users, items) for order in orders]
    opening = [
        _opening(order, items[order["item_id"]]["price"], deadlines)
        for order, answer in zip(orders, answers, strict=True)
        if answer is None
    ]
    outcomes = await step_log.record_all(
        [(o.created, StepName.CREATE, "place_order", o, _emits(o.created)) for o in opening]
    )
    opened = [o.opened(outcome) for o, outcome in zip(opening, outcomes, strict=True)]
    again = [o.created.order_id for o, new in zip(opening, opened, strict=True) if not new]
    before = await _placed_before(again, step_log)
    taken = iter(zip(opening, opened, strict=True))
    for n, order in enumerate(orders):
        if answers[n] is None:
            this, new = next(taken)
            answers[n] = _opened(this, sagas) if new else _same_purchase(order, before)
    return answers


def _unknown(
    order: Mapping[str, Any], users: Mapping[str, Any], items: Mapping[str, Any]
) -> NotFound | None:
    if order["user_id"] not in users:
        return NotFound(f"no user with id {order['user_id']}")
    if order["item_id"] not in items:
        return NotFound(f"no item with id {order['item_id']}")
    return None


@dataclass
class _Opening:
    """One order to open: the event that starts its saga, and, once decided, its row."""

    created: Event
    unit_price: int
    deadlines: Deadlines
    row: Row | None = None

    def __call__(self, book: Book) -> Event:
        self.row = book.insert(
            ORDERS,
            self.created,
            user_id=self.created.user_id,
            item_id=self.created.item_id,
            quantity=self.created.quantity,
            unit_price=self.unit_price,
            total_amount=self.created.amount,
            deadline_at=book.now + timedelta(seconds=self.deadlines.saga),
            **_owing(Owed.OUTCOME, self.deadlines, book.now),
        )
        return self.created

    def opened(self, outcome: Event | None) -> bool:
        """Whether this call opened the order (its step emitted this call's event), rather
        than finding it placed before."""
        return (
            self.row is not None
            and outcome is not None
            and outcome.event_id == self.created.event_id
        )


def _opening(order: Mapping[str, Any], price: int, deadlines: Deadlines) -> _Opening:
    created = Event(
        EventName.ORDER_CREATED,
        order_id=order["order_id"],
        user_id=order["user_id"],
        item_id=order["item_id"],
        quantity=order["quantity"],
        amount=price * order["quantity"],
        request_id=_request_id(order.get("request_id")),
        traceparent=_traceparent(order.get("traceparent")),
    )
    return _Opening(created, price, deadlines)


def _request_id(given: Any) -> str | None:
    """The id of the HTTP request that placed the order, when it is one an event may carry."""
    return given if isinstance(given, str) and REQUEST_ID.fullmatch(given) else None


def _traceparent(given: Any) -> str | None:
    """The span of the HTTP request that placed the order, when tracing is on."""
    return given if isinstance(given, str) and TRACEPARENT.fullmatch(given) else None


def _opened(opening: _Opening, sagas: Sagas) -> dict[str, Any]:
    """A new order, answered from what was written, without reading it again."""
    assert opening.row is not None
    sagas.started(opening.created.order_id)
    log.debug("order %s: %s", opening.created.order_id, opening.created)
    return shown(Order, values(opening.row), "backoff")


async def _placed_before(order_ids: Sequence[str], step_log: StepLog) -> dict[str, dict[str, Any]]:
    """The orders placed before under these ids, read in one statement: after a commit whose
    answer the connection lost, the whole batch is here, and each read is a chance to lose
    the connection again."""
    if not order_ids:
        return {}
    keys = [(canonical_uuid(order_id),) for order_id in sorted(set(order_ids))]
    rows = await step_log.database.lookup_all(ORDERS, keys)
    return {canonical_uuid(row["id"]): shown(Order, row, "backoff") for row in rows}


def _same_purchase(
    order: Mapping[str, Any], before: Mapping[str, dict[str, Any]]
) -> dict[str, Any] | Conflict | NotFound:
    """The order placed before under this id, if it is the same purchase."""
    placed = before.get(canonical_uuid(order["order_id"]))
    if placed is None:
        return NotFound(f"no order with id {order['order_id']}")
    asked = (order["user_id"], order["item_id"], order["quantity"])
    if (placed["userId"], placed["itemId"], placed["quantity"]) != asked:
        return Conflict(
            f"order {order['order_id']} was placed before with another user, item or quantity"
        )
    return placed


def _event(name: EventName, order: Order, reason: str | None = None) -> Event:
    return Event(
        name,
        order_id=str(order.id),
        user_id=str(order.user_id),
        item_id=str(order.item_id),
        quantity=order.quantity,
        amount=order.total_amount,
        reason=reason,
    )


def complete_order(event: Event, book: Book, *, deadlines: Deadlines, sagas: Sagas) -> Event | None:
    order = book.get(ORDERS, event)
    if order is None or order.status is not OrderStatus.PENDING:
        return None  # it expired meanwhile: the payment service refunds what it took
    book.set(order, status=OrderStatus.COMPLETED, **_owing(Owed.SETTLING, deadlines, book.now))
    book.after_commit(partial(sagas.completed, event.order_id))
    return event.follow(EventName.ORDER_COMPLETED)


def cancel_order(event: Event, book: Book, *, deadlines: Deadlines, sagas: Sagas) -> Event | None:
    """The user's money is back: cancel the order, or, if it expired, stop asking for that."""
    order = book.get(ORDERS, event)
    if order is None:
        return None
    if order.status is OrderStatus.PENDING:
        ended = _owing(Owed.SETTLING, deadlines, book.now)
        book.set(order, status=OrderStatus.CANCELLED, failure_reason=event.reason, **ended)
        book.after_commit(partial(sagas.cancelled, event.order_id, event.reason))
        log.debug("order %s: cancelled (%s)", event.order_id, event.reason)
    elif order.owes is Owed.UNDOING:
        book.note(order, **_owing(Owed.SETTLING, deadlines, book.now))
        log.debug("order %s: everything it held is given back", event.order_id)
    else:
        return None
    return event.follow(EventName.ORDER_CANCELLED)


def close_order(event: Event, book: Book, *, deadlines: Deadlines) -> None:
    """The user was told, after every service settled its part: nothing more is owed."""
    order = book.get(ORDERS, event)
    if order is not None and order.owes is Owed.SETTLING:
        book.note(order, **_owing(None, deadlines, book.now))


def _owing(owed: Owed | None, deadlines: Deadlines, moment: datetime) -> dict[str, Any]:
    """The columns that say what is owed and when to ask again, backing off from scratch."""
    retry_at = None if owed is None else moment + deadlines.wait(0)
    return {"owes": owed, "retry_at": retry_at, "backoff": 0}


def _emits(event: Event) -> frozenset[EventName]:
    return frozenset({event.name})


async def sweep(*, step_log: StepLog, deadlines: Deadlines, sagas: Sagas) -> dict[str, int]:
    """Nudge the due orders, and end those past their deadline. An order the sweep cannot
    handle is logged and left: it must not keep every other order waiting behind it."""
    moment = now()
    owing = Order.filter(retry_at__lte=moment, owes__isnull=False)
    done: Counter[str] = Counter()
    for order in await owing.order_by("retry_at").limit(SWEEP_BATCH):
        try:
            what = await _look_at(order, moment, step_log, deadlines, sagas)
        except StoreUnavailable:
            raise
        except Exception:
            log.exception("sweep: order %s (owes %s, %s)", order.id, order.owes, order.status)
            continue
        if what is not None:
            done[what] += 1
    if done:
        log.info("sweep: %s", ", ".join(f"{n} {what}" for what, n in done.items()))
    return dict(done)


async def _look_at(
    order: Order, moment: datetime, step_log: StepLog, deadlines: Deadlines, sagas: Sagas
) -> str | None:
    """What the sweep did with one due order; None: another process did it first."""
    match on_due(order, deadlines, moment):
        case Expire():
            expired = _event(EventName.ORDER_EXPIRED, order, _too_late(deadlines))
            expire = partial(_expire, expired, deadlines, sagas)
            await step_log.record(expired, StepName.EXPIRE, "deadline", expire, _emits(expired))
            return "expired"
        case Nudge(step, next_at) if await claim_nudge(order, next_at):
            await step_log.republish(str(order.id), step)
            sagas.nudged(order.owes)
            return f"nudged for {order.owes}"
    return None


class Owing(Protocol):
    """An order as the sweep's rules see it."""

    @property
    def owes(self) -> Owed | None: ...

    @property
    def status(self) -> OrderStatus: ...

    @property
    def deadline_at(self) -> datetime: ...

    @property
    def backoff(self) -> int: ...


NUDGED_BY: Mapping[tuple[Owed, OrderStatus], StepName] = {
    (Owed.OUTCOME, OrderStatus.PENDING): StepName.CREATE,
    (Owed.UNDOING, OrderStatus.CANCELLED): StepName.EXPIRE,
    (Owed.SETTLING, OrderStatus.COMPLETED): StepName.COMPLETE,
    (Owed.SETTLING, OrderStatus.CANCELLED): StepName.CANCEL,
}
"""Whose event, published again, moves an order on from what it owes: what the order service
owes (`Owed`) and the order's status are every state a due order can be in."""


@dataclass(frozen=True)
class Expire:
    """The saga ran out of time: cancel the order and undo what its services hold."""


@dataclass(frozen=True)
class Nudge:
    """Publish `step`'s outcome again, and look again at `next_at` unless it moves."""

    step: StepName
    next_at: datetime


def on_due(order: Owing, deadlines: Deadlines, moment: datetime) -> Expire | Nudge:
    """What the sweep does with an order due at `moment`."""
    if past_deadline(order, moment):
        return Expire()
    if order.owes is None:
        raise ValueError(f"order {order} owes nothing: it is not due")
    return Nudge(NUDGED_BY[(order.owes, order.status)], next_look(order, deadlines, moment))


def past_deadline(order: Owing, moment: datetime) -> bool:
    """Whether a saga still waiting for its outcome has run out of time at `moment`."""
    return order.owes is Owed.OUTCOME and moment >= order.deadline_at


def next_look(order: Owing, deadlines: Deadlines, moment: datetime) -> datetime:
    """When the sweep looks again after a nudge at `moment`: backing off, but never past the
    deadline of a saga still waiting for its outcome (it must expire then)."""
    later = moment + deadlines.wait(order.backoff + 1)
    return min(later, order.deadline_at) if order.owes is Owed.OUTCOME else later


async def claim_nudge(order: Order, next_at: datetime) -> bool:
    """Whether this process takes the nudge: the first to count it does, by a conditional write,
    and only while the order still owes what it was read owing (a step that moved it on, or
    closed it, meanwhile must not get a `retry_at` back)."""
    taken = await Order.filter(id=order.id, nudges=order.nudges, owes=order.owes).update(
        nudges=order.nudges + 1, backoff=order.backoff + 1, retry_at=next_at
    )
    return bool(taken)


def _too_late(deadlines: Deadlines) -> str:
    return f"order: no outcome within the {deadlines.saga:g}s deadline"


def _expire(expired: Event, deadlines: Deadlines, sagas: Sagas, book: Book) -> Event | None:
    """Cancel at once; the undoing is owed until the user has their money back."""
    order = book.get(ORDERS, expired)
    if order is None or order.status is not OrderStatus.PENDING:
        return None
    undoing = _owing(Owed.UNDOING, deadlines, book.now)
    book.set(order, status=OrderStatus.CANCELLED, failure_reason=expired.reason, **undoing)
    log.warning("order %s: expired; undoing what it holds", expired.order_id)
    book.after_commit(partial(sagas.expired, expired.order_id))
    return expired


async def settled_orders(order_ids: list[str], before: str) -> list[str]:
    """Which of these orders owe nothing and last changed before `before`: what retention may
    prune the steps of, in every service (`sagashop.saga.retention`)."""
    if len(order_ids) > retention.BATCH:
        raise InvalidRequest(f"at most {retention.BATCH} orders at a time")
    moment = datetime.fromisoformat(before)
    ended = Order.filter(id__in=order_ids, owes=None, updated_at__lt=moment)
    return [str(order_id) for order_id in await ended.values_list("id", flat=True)]


class OrderFacts(TypedDict):
    """What the audit reads of this service (see `sagashop.audit`)."""

    orders: Table


async def audit_facts() -> OrderFacts:
    columns = ("id", "status", "user_id", "item_id", "quantity", "total_amount")
    times = ("created_at", "updated_at", "deadline_at", "owes")
    return {"orders": await table(Order, *columns, *times)}


async def get_order(
    order_id: str, wait: float = 0.0, *, step_log: StepLog, watch: StepWatch
) -> dict[str, Any]:
    """The order; with `wait`, once it has ended or `wait` seconds have passed. One read of
    one row, its SQL built once: clients follow their orders with it."""

    async def read() -> dict[str, Any]:
        return shown(Order, await _read(step_log, order_id), "backoff")

    return await _once_ended(order_id, wait, watch, read)


async def get_order_status(
    order_id: str, wait: float = 0.0, *, step_log: StepLog, watch: StepWatch
) -> dict[str, Any]:
    """Only where the order stands: the smallest read, for clients that wait for the outcome."""

    async def read() -> dict[str, Any]:
        row = await _read(step_log, order_id, ("status", "failure_reason"))
        return {"id": order_id, "status": row["status"], "failureReason": row["failure_reason"]}

    return await _once_ended(order_id, wait, watch, read)


async def _read(
    step_log: StepLog, order_id: str, columns: tuple[str, ...] | None = None
) -> dict[str, Any]:
    row = await step_log.database.lookup(ORDERS, (order_id,), columns)
    if row is None:
        raise NotFound(f"no order with id {order_id}")
    return row


async def _once_ended(
    order_id: str,
    wait: float,
    watch: StepWatch,
    read: Callable[[], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """What `read` finds once the order is no longer PENDING, or when `wait` runs out. It reads
    again as soon as the order takes a step in this process, and every `LOOK_AGAIN` seconds
    besides: where several processes run the order service, the step may be taken in another."""
    if wait <= 0:
        return await read()
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + wait
    while True:
        with watch.next_step(order_id) as stepped:
            found_now = await read()
            remaining = give_up_at - loop.time()
            if found_now["status"] != OrderStatus.PENDING or remaining <= 0:
                return found_now
            await asyncio.wait([stepped], timeout=min(remaining, LOOK_AGAIN))


async def list_user_orders(
    user_id: str, after: Position | None = None, limit: int = PAGE
) -> dict[str, Any]:
    """A page of the user's orders, newest first."""
    orders, after = await page(Order.filter(user_id=user_id), NEWEST_FIRST, after, limit)
    found = [as_json(order, "backoff") for order in orders]
    return {"userId": user_id, "orders": found, "next": after}


async def list_orders(
    status: str | None = None,
    limit: int = PAGE,
    after: Position | None = None,
    id_prefix: str | None = None,
) -> dict[str, Any]:
    """The latest orders, newest first, of one status if given (the monitor's list); with
    `id_prefix`, those whose id begins with it, in id order (the monitor's search)."""
    chosen = Order.all() if status is None else Order.filter(status=OrderStatus(status))
    order: Sequence[str] = NEWEST_FIRST
    if id_prefix is not None:
        lowest, highest = ids_beginning(id_prefix)
        chosen, order = chosen.filter(id__gte=lowest, id__lte=highest), BY_ID
    orders, after = await page(chosen, order, after, limit)
    return {"orders": [as_json(order, "backoff") for order in orders], "next": after}


def ids_beginning(prefix: str) -> tuple[str, str]:
    """The lowest and the highest UUID that begin with `prefix` (the first characters of one,
    dashes where it has them): a range the id's index reads directly, where a LIKE would not
    (SQLite's is case-insensitive, PostgreSQL's uuid has none)."""
    digits = prefix.replace("-", "").lower()
    return str(UUID(digits.ljust(32, "0"))), str(UUID(digits.ljust(32, "f")))


async def count_orders() -> dict[str, Any]:
    """How many orders stand where, and which service's refusal cancelled how many ("order"
    for those that expired). COUNT(*), so that the index on (status, failure_reason) answers
    it alone."""
    rows = (
        await Order.annotate(count=RawSQL("COUNT(*)"))
        .group_by("status", "failure_reason")
        .values("status", "failure_reason", "count")
    )
    by_status: Counter[str] = Counter()
    cancelled_by: Counter[str] = Counter()
    for row in rows:
        by_status[row["status"]] += row["count"]
        if row["status"] == OrderStatus.CANCELLED:
            cancelled_by[refused_by(row["failure_reason"]) or "other"] += row["count"]
    statuses = {status.value: by_status[status.value] for status in OrderStatus}
    return {"byStatus": statuses, "cancelledBy": dict(cancelled_by)}


SERVICE = Service(
    name=ServiceName.ORDER,
    records=OrderStep,
    dead_letters=OrderDeadLetter,
    tables=(ORDERS,),
    steps=(
        step(
            StepName.COMPLETE,
            on=[EventName.PAYMENT_PROCESSED],
            run=complete_order,
            emits=[EventName.ORDER_COMPLETED],
        ),
        step(
            StepName.CANCEL,
            on=[EventName.BALANCE_REJECTED, EventName.BALANCE_RELEASED],
            run=cancel_order,
            emits=[EventName.ORDER_CANCELLED],
        ),
        step(StepName.CLOSE, on=[EventName.NOTIFICATION_SENT], run=close_order, settling=True),
    ),
    batched={Request.PLACE_ORDER: place_orders},
    queries={
        Request.GET_ORDER: get_order,
        Request.GET_ORDER_STATUS: get_order_status,
        Request.LIST_USER_ORDERS: list_user_orders,
        Request.LIST_ORDERS: list_orders,
        Request.COUNT_ORDERS: count_orders,
        Request.AUDIT_FACTS: audit_facts,
        Request.SETTLED_ORDERS: settled_orders,
    },
    periodic={"sweep": sweep},
)
