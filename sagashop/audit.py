"""The audit: nothing created or destroyed, nothing left held, no order left behind.

Each service reports its facts (`audit_facts`, asked like any other query, so the audit works
however the services are spread over processes); `check` is a plain function of those facts.

Within one service the books balance at every moment, because every step is one transaction:
a user's opening balance is their balance plus what is held plus what was spent; an item's
opening stock is its stock plus what is held plus what was sold; a bag's capacity is its free
slots plus what is held plus what it contains. Across services the books balance once a saga
has settled: an order that ended more than `settle` ago must have every service's part
confirmed (completed) or given back (cancelled). Orders that ended more recently, or are still
running within their deadline, are counted as in flight and left alone.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sagashop.actors.inventory import InventoryFacts
from sagashop.actors.item import ItemFacts
from sagashop.actors.order import OrderFacts
from sagashop.actors.payment import PaymentFacts
from sagashop.actors.user import UserFacts
from sagashop.names import Request, ServiceName
from sagashop.store.facts import Table
from sagashop.store.reservations import HOLDING

Row = dict[str, Any]
Ask = Callable[[str, str, Mapping[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Facts:
    """What each audited service reports (its `audit_facts`), by service: a field for each
    service whose declaration answers `Request.AUDIT_FACTS` (a test keeps the two the same)."""

    order: OrderFacts
    user: UserFacts
    inventory: InventoryFacts
    item: ItemFacts
    payment: PaymentFacts


@dataclass(frozen=True)
class Violation:
    check: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.subject}: {self.detail}"


@dataclass(frozen=True)
class Report:
    violations: list[Violation]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": self.counts,
            "violations": [str(violation) for violation in self.violations],
        }

    def lines(self) -> list[str]:
        return lines_of(self.to_dict())


def lines_of(report: Mapping[str, Any]) -> list[str]:
    """A report as the command line prints it, from here or from a front door's `/audit`."""
    violations, counts = report["violations"], report["counts"]
    summary = ", ".join(f"{n} {what}" for what, n in counts.items())
    verdict = "audit ok" if report["ok"] else f"audit found {len(violations)} violation(s)"
    return [f"{verdict} ({summary})", *(f"  {violation}" for violation in violations)]


async def gather(ask: Ask) -> Facts:
    """Every audited service's facts; a service that does not answer makes this fail."""
    audited = [ServiceName(f.name) for f in fields(Facts)]
    answers = await asyncio.gather(*(ask(name, Request.AUDIT_FACTS, {}) for name in audited))
    return Facts(**{name.value: answer for name, answer in zip(audited, answers, strict=True)})


def _rows(table: Table) -> list[Row]:
    return [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]


def _orders(rows: list[Row]) -> dict[str, Row]:
    moments = ("created_at", "updated_at", "deadline_at")
    return {
        order["id"]: {**order, **{m: datetime.fromisoformat(order[m]) for m in moments}}
        for order in rows
    }


@dataclass(frozen=True)
class Books:
    """The facts' tables as rows (dicts by column name), each made once: several checks read
    the same one."""

    orders: dict[str, Row]
    users: list[Row]
    money_held: list[Row]
    items: list[Row]
    stock_held: list[Row]
    bags: list[Row]
    contents: list[Row]
    slots_held: list[Row]
    payments: list[Row]

    @classmethod
    def of(cls, facts: Facts) -> Books:
        return cls(
            orders=_orders(_rows(facts.order["orders"])),
            users=_rows(facts.user["users"]),
            money_held=_rows(facts.user["held"]),
            items=_rows(facts.item["items"]),
            stock_held=_rows(facts.item["held"]),
            bags=_rows(facts.inventory["bags"]),
            contents=_rows(facts.inventory["contents"]),
            slots_held=_rows(facts.inventory["held"]),
            payments=_rows(facts.payment["payments"]),
        )

    @cached_property
    def parts(self) -> dict[ServiceName, dict[str, tuple[str, int]]]:
        """service -> order -> (state, how much): each service's part of each order."""
        kept = {
            ServiceName.USER: (self.money_held, "amount"),
            ServiceName.INVENTORY: (self.slots_held, "quantity"),
            ServiceName.ITEM: (self.stock_held, "quantity"),
            ServiceName.PAYMENT: (self.payments, "amount"),
        }
        return {
            service: {row["order_id"]: (row["state"], row[size]) for row in rows}
            for service, (rows, size) in kept.items()
        }


def check(facts: Facts, now: datetime | None = None, settle: float = 5.0) -> Report:
    now = now or datetime.now(UTC)
    books = Books.of(facts)
    orders = books.orders
    settled, in_flight, violations = _triage(orders, now, timedelta(seconds=settle))
    violations += [
        *_money(books),
        *_stock(books),
        *_bags(books),
        *_parts(settled, books),
        *_orphans(orders, books),
    ]
    if not in_flight:
        violations += _money_across(books)
    counts = {
        "users": len(books.users),
        "items": len(books.items),
        "orders": len(orders),
        "settled": len(settled),
        "in flight": len(in_flight),
    }
    return Report(violations, counts)


def _triage(
    orders: Mapping[str, Row], now: datetime, settle: timedelta
) -> tuple[dict[str, Row], list[str], list[Violation]]:
    """Settled orders; orders in flight (running, or ended and still settling); and orders
    left behind: open past their deadline, or still owed something a deadline after ending."""
    settled: dict[str, Row] = {}
    in_flight: list[str] = []
    late: list[Violation] = []
    for order_id, order in orders.items():
        since_end = now - order["updated_at"]
        if order["status"] == "PENDING" and now - order["deadline_at"] > settle:
            overdue = (now - order["deadline_at"]).total_seconds()
            late.append(
                Violation(
                    "deadline",
                    f"order {order_id}",
                    f"still PENDING {overdue:.0f}s past its deadline",
                )
            )
        elif order["owes"] and since_end > order["deadline_at"] - order["created_at"] + settle:
            late.append(
                Violation(
                    "settle",
                    f"order {order_id}",
                    f"{order['status']}, still owed its {order['owes']} "
                    f"{since_end.total_seconds():.0f}s after it ended",
                )
            )
        elif order["owes"] or since_end < settle:
            in_flight.append(order_id)
        else:
            settled[order_id] = order
    return settled, in_flight, late


def _held(rows: Iterable[Row], owner: str, size: str) -> Counter[str]:
    """Sum of what is reserved or spent, per owner (user or item)."""
    total: Counter[str] = Counter()
    for row in rows:
        if row["state"] in HOLDING:
            total[row[owner]] += row[size]
    return total


def _money(books: Books) -> list[Violation]:
    held = _held(books.money_held, "user_id", "amount")
    users = [(u["id"], u["opening_balance"], u["balance"]) for u in books.users]
    return _opening_kept("money", ServiceName.USER, "balance", users, held)


def _stock(books: Books) -> list[Violation]:
    held = _held(books.stock_held, "item_id", "quantity")
    items = [(i["id"], i["opening_stock"], i["stock"]) for i in books.items]
    return _opening_kept("stock", ServiceName.ITEM, "stock", items, held)


def _opening_kept(
    check: str, owner: str, left: str, rows: Iterable[tuple[str, int, int]], held: Counter[str]
) -> list[Violation]:
    """What each owner started with is what it has left plus what is held or used."""
    return [
        Violation(
            check,
            f"{owner} {key}",
            f"opening {opening} != {left} {now} + held or used {held[key]} "
            f"(off by {opening - now - held[key]})",
        )
        for key, opening, now in rows
        if opening != now + held[key]
    ]


def _bags(books: Books) -> list[Violation]:
    slots = books.slots_held
    held = _held(slots, "user_id", "quantity")
    filled: Counter[tuple[str, str]] = Counter()
    for slot in slots:
        if slot["state"] == "confirmed":
            filled[(slot["user_id"], slot["item_id"])] += slot["quantity"]
    contents = {(row["user_id"], row["item_id"]): row["quantity"] for row in books.contents}
    found = [
        Violation(
            "bag",
            f"user {bag['user_id']}",
            f"capacity {bag['capacity']} != free {bag['free']} + held or filled "
            f"{held[bag['user_id']]}",
        )
        for bag in books.bags
        if bag["capacity"] != bag["free"] + held[bag["user_id"]]
    ]
    return found + [
        Violation(
            "bag",
            f"user {user_id}",
            f"holds {contents.get((user_id, item_id), 0)} of item {item_id}, but "
            f"{filled[(user_id, item_id)]} were delivered",
        )
        for user_id, item_id in set(contents) | set(filled)
        if contents.get((user_id, item_id), 0) != filled[(user_id, item_id)]
    ]


def _parts(settled: Mapping[str, Row], books: Books) -> list[Violation]:
    """Each settled order's part in every service: all confirmed, or nothing held."""
    parts = books.parts
    found: list[Violation] = []
    for order_id, order in settled.items():
        expected = _expected_parts(order)
        for service, rows in parts.items():
            seen = rows.get(order_id, (None, None))
            if not expected[service](seen):
                found.append(
                    Violation(
                        "held", f"order {order_id}", f"{order['status']}, but {service} has {seen}"
                    )
                )
    return found


def _expected_parts(order: Row) -> dict[ServiceName, Callable[[tuple[Any, ...]], bool]]:
    if order["status"] == "COMPLETED":
        return {
            ServiceName.USER: lambda seen: seen == ("confirmed", order["total_amount"]),
            ServiceName.INVENTORY: lambda seen: seen == ("confirmed", order["quantity"]),
            ServiceName.ITEM: lambda seen: seen == ("confirmed", order["quantity"]),
            ServiceName.PAYMENT: lambda seen: seen == ("captured", order["total_amount"]),
        }
    holds_nothing: Callable[[tuple[Any, ...]], bool] = lambda seen: seen[0] not in HOLDING  # noqa: E731
    return {
        ServiceName.USER: holds_nothing,
        ServiceName.INVENTORY: holds_nothing,
        ServiceName.ITEM: holds_nothing,
        ServiceName.PAYMENT: lambda seen: seen[0] != "captured",
    }


def _orphans(orders: Mapping[str, Any], books: Books) -> list[Violation]:
    """Something held for an order the order service never opened."""
    held = [
        (service, order_id, part)
        for service, by_order in books.parts.items()
        for order_id, part in by_order.items()
        if part[0] in HOLDING or part[0] == "captured"
    ]
    return [
        Violation("held", f"order {order_id}", f"{service} holds {list(part)} for an unknown order")
        for service, order_id, part in held
        if order_id not in orders
    ]


def _money_across(books: Books) -> list[Violation]:
    """Once nothing is in flight: all opening balances = all balances + captured payments."""
    users = books.users
    opening = sum(user["opening_balance"] for user in users)
    balances = sum(user["balance"] for user in users)
    payments = books.payments
    captured = sum(p["amount"] for p in payments if p["state"] == "captured")
    if opening == balances + captured:
        return []
    return [
        Violation(
            "money",
            "all users",
            f"opening {opening} != balances {balances} + captured payments {captured} "
            f"(off by {opening - balances - captured})",
        )
    ]
