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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

Facts = Mapping[str, Mapping[str, list[list[Any]]]]
Ask = Callable[[str, str, Mapping[str, Any]], Awaitable[Any]]

HOLDS = {"reserved", "confirmed"}
AUDITED = ("order", "user", "inventory", "item", "payment")


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
        summary = ", ".join(f"{n} {what}" for what, n in self.counts.items())
        verdict = "audit ok" if self.ok else f"audit found {len(self.violations)} violation(s)"
        return [f"{verdict} ({summary})", *(f"  {violation}" for violation in self.violations)]


async def gather(ask: Ask) -> Facts:
    """Every audited service's facts; a service that does not answer makes this fail."""
    answers = await asyncio.gather(*(ask(name, "audit_facts", {}) for name in AUDITED))
    return dict(zip(AUDITED, answers, strict=True))


def check(facts: Facts, now: datetime | None = None, settle: float = 5.0) -> Report:
    now = now or datetime.now(UTC)
    orders = _orders(facts["order"]["orders"])
    settled, in_flight, violations = _triage(orders, now, timedelta(seconds=settle))
    violations += [
        *_money(facts["user"]),
        *_stock(facts["item"]),
        *_bags(facts["inventory"]),
        *_parts(settled, facts),
        *_orphans(orders, facts),
    ]
    if not in_flight:
        violations += _money_across(facts)
    counts = {
        "users": len(facts["user"]["users"]),
        "items": len(facts["item"]["items"]),
        "orders": len(orders),
        "settled": len(settled),
        "in flight": len(in_flight),
    }
    return Report(violations, counts)


def _orders(table: list[list[Any]]) -> dict[str, dict[str, Any]]:
    names = ("status", "user", "item", "quantity", "total", "created", "updated", "deadline")
    orders = {
        row[0]: {**dict(zip(names, row[1:-1], strict=True)), "owes": row[-1]} for row in table
    }
    for order in orders.values():
        for moment in ("created", "updated", "deadline"):
            order[moment] = datetime.fromisoformat(order[moment])
    return orders


def _triage(
    orders: Mapping[str, dict[str, Any]], now: datetime, settle: timedelta
) -> tuple[dict[str, dict[str, Any]], list[str], list[Violation]]:
    """Settled orders; orders in flight (running, or ended and still settling); and orders
    left behind: open past their deadline, or still owed something a deadline after ending."""
    settled: dict[str, dict[str, Any]] = {}
    in_flight: list[str] = []
    late: list[Violation] = []
    for order_id, order in orders.items():
        since_end = now - order["updated"]
        if order["status"] == "PENDING" and now - order["deadline"] > settle:
            overdue = (now - order["deadline"]).total_seconds()
            late.append(
                Violation(
                    "deadline",
                    f"order {order_id}",
                    f"still PENDING {overdue:.0f}s past its deadline",
                )
            )
        elif order["owes"] and since_end > order["deadline"] - order["created"] + settle:
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


def _held(rows: Iterable[list[Any]], owner: int) -> Counter[str]:
    """Sum of what is reserved or spent, per owner column (user or item)."""
    total: Counter[str] = Counter()
    for row in rows:
        if row[1] in HOLDS:
            total[row[owner]] += row[2]
    return total


def _money(user: Mapping[str, list[list[Any]]]) -> list[Violation]:
    return _opening_kept("money", "user", "balance", user["users"], _held(user["held"], owner=3))


def _stock(item: Mapping[str, list[list[Any]]]) -> list[Violation]:
    return _opening_kept("stock", "item", "stock", item["items"], _held(item["held"], owner=3))


def _opening_kept(
    check: str, owner: str, left: str, rows: Iterable[list[Any]], held: Counter[str]
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


def _bags(inventory: Mapping[str, list[list[Any]]]) -> list[Violation]:
    held = _held(inventory["held"], owner=3)
    filled: Counter[tuple[str, str]] = Counter()
    for _order, state, quantity, user_id, item_id in inventory["held"]:
        if state == "confirmed":
            filled[(user_id, item_id)] += quantity
    contents = {(user_id, item_id): n for user_id, item_id, n in inventory["contents"]}
    found = [
        Violation(
            "bag",
            f"user {user_id}",
            f"capacity {capacity} != free {free} + held or filled {held[user_id]}",
        )
        for user_id, capacity, free in inventory["bags"]
        if capacity != free + held[user_id]
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


def _parts(settled: Mapping[str, dict[str, Any]], facts: Facts) -> list[Violation]:
    """Each settled order's part in every service: all confirmed, or nothing held."""
    parts = {
        "user": _by_order(facts["user"]["held"]),
        "inventory": _by_order(facts["inventory"]["held"]),
        "item": _by_order(facts["item"]["held"]),
        "payment": _by_order(facts["payment"]["payments"]),
    }
    found: list[Violation] = []
    for order_id, order in settled.items():
        expected = _expected_parts(order)
        for service, rows in parts.items():
            seen = tuple(rows.get(order_id, (None, None))[:2])
            if not expected[service](seen):
                found.append(
                    Violation(
                        "held", f"order {order_id}", f"{order['status']}, but {service} has {seen}"
                    )
                )
    return found


def _by_order(rows: Iterable[list[Any]]) -> dict[str, list[Any]]:
    return {row[0]: row[1:] for row in rows}


def _expected_parts(order: Mapping[str, Any]) -> dict[str, Callable[[tuple[Any, ...]], bool]]:
    if order["status"] == "COMPLETED":
        return {
            "user": lambda seen: seen == ("confirmed", order["total"]),
            "inventory": lambda seen: seen == ("confirmed", order["quantity"]),
            "item": lambda seen: seen == ("confirmed", order["quantity"]),
            "payment": lambda seen: seen == ("captured", order["total"]),
        }
    holds_nothing: Callable[[tuple[Any, ...]], bool] = lambda seen: seen[0] not in HOLDS  # noqa: E731
    return {
        "user": holds_nothing,
        "inventory": holds_nothing,
        "item": holds_nothing,
        "payment": lambda seen: seen[0] != "captured",
    }


def _orphans(orders: Mapping[str, Any], facts: Facts) -> list[Violation]:
    """Something held for an order the order service never opened."""
    held = [
        (service, row)
        for service in ("user", "inventory", "item")
        for row in facts[service]["held"]
        if row[1] in HOLDS
    ] + [("payment", row) for row in facts["payment"]["payments"] if row[1] == "captured"]
    return [
        Violation("held", f"order {row[0]}", f"{service} holds {row[1:3]} for an unknown order")
        for service, row in held
        if row[0] not in orders
    ]


def _money_across(facts: Facts) -> list[Violation]:
    """Once nothing is in flight: all opening balances = all balances + captured payments."""
    opening = sum(row[1] for row in facts["user"]["users"])
    balances = sum(row[2] for row in facts["user"]["users"])
    captured = sum(row[2] for row in facts["payment"]["payments"] if row[1] == "captured")
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
