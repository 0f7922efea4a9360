"""The audit is a plain function of what the services report: books in order pass, and each
kind of error is reported with what is off."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sagashop import audit
from sagashop.actors import SERVICES
from sagashop.store.facts import Table

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LONG_AGO = (NOW - timedelta(minutes=5)).isoformat()


ORDER_COLUMNS = (
    "id",
    "status",
    "user_id",
    "item_id",
    "quantity",
    "total_amount",
    "created_at",
    "updated_at",
    "deadline_at",
    "owes",
)


def order_row(order_id: str, status: str, **changes: Any) -> list[Any]:
    row = {
        "id": order_id,
        "status": status,
        "user_id": "u",
        "item_id": "i",
        "quantity": 2,
        "total_amount": 2_000,
        "created_at": LONG_AGO,
        "updated_at": LONG_AGO,
        "deadline_at": (NOW - timedelta(minutes=4)).isoformat(),
        "owes": None,
        **changes,
    }
    return [row[column] for column in ORDER_COLUMNS]


def table(columns: str, *rows: list[Any]) -> Table:
    return {"columns": columns.split(), "rows": list(rows)}


def held(columns: str, undone: str, *values: Any) -> Table:
    """A service's holds for the two orders of `books`: the completed order's confirmed, the
    cancelled one's left `undone`; `values` fill the `columns` after order_id and state."""
    return table(
        f"order_id state {columns}", ["done", "confirmed", *values], ["undone", undone, *values]
    )


def books() -> audit.Facts:
    """One completed order (2 x 1000) and one cancelled one, all in order."""
    return audit.Facts(
        order={
            "orders": {
                "columns": list(ORDER_COLUMNS),
                "rows": [order_row("done", "COMPLETED"), order_row("undone", "CANCELLED")],
            }
        },
        user={
            "users": table("id opening_balance balance", ["u", 10_000, 8_000]),
            "held": held("amount user_id", "released", 2_000, "u"),
        },
        inventory={
            "bags": table("user_id capacity free", ["u", 20, 18]),
            "contents": table("user_id item_id quantity", ["u", "i", 2]),
            "held": held("quantity user_id item_id", "released", 2, "u", "i"),
        },
        item={
            "items": table("id opening_stock stock", ["i", 50, 48]),
            "held": held("quantity item_id", "voided", 2, "i"),
        },
        payment={
            "payments": table(
                "order_id state amount", ["done", "captured", 2_000], ["undone", "declined", 2_000]
            )
        },
    )


def violations(change: Callable[[audit.Facts], None]) -> list[str]:
    facts = books()
    change(facts)
    return [str(v) for v in audit.check(facts, NOW).violations]


def test_books_in_order_pass() -> None:
    report = audit.check(books(), NOW)
    assert report.ok
    assert report.counts == {"users": 1, "items": 1, "orders": 2, "settled": 2, "in flight": 0}


def test_money_that_appeared_is_reported_with_its_amount() -> None:
    found = violations(lambda facts: facts.user["users"]["rows"][0].__setitem__(2, 8_500))
    assert found == [
        "money: user u: opening 10000 != balance 8500 + held or used 2000 (off by -500)",
        "money: all users: opening 10000 != balances 8500 + captured payments 2000 (off by -500)",
    ]


def test_stock_that_vanished_is_reported() -> None:
    found = violations(lambda facts: facts.item["items"]["rows"][0].__setitem__(2, 47))
    assert found == ["stock: item i: opening 50 != stock 47 + held or used 2 (off by 1)"]


def test_a_bag_must_hold_what_was_delivered() -> None:
    found = violations(lambda facts: facts.inventory["contents"]["rows"][0].__setitem__(2, 3))
    assert found == ["bag: user u: holds 3 of item i, but 2 were delivered"]


def test_a_settled_order_must_not_leave_anything_held() -> None:
    def still_charged(facts: audit.Facts) -> None:
        facts.payment["payments"]["rows"][1][1] = "captured"

    def not_confirmed(facts: audit.Facts) -> None:
        facts.inventory["held"]["rows"][0][1] = "reserved"

    assert violations(still_charged) == [
        "held: order undone: CANCELLED, but payment has ('captured', 2000)",
        "money: all users: opening 10000 != balances 8000 + captured payments 4000 (off by -2000)",
    ]
    assert violations(not_confirmed) == [
        "bag: user u: holds 2 of item i, but 0 were delivered",
        "held: order done: COMPLETED, but inventory has ('reserved', 2)",
    ]


def test_an_order_left_open_past_its_deadline_is_reported() -> None:
    def stuck(facts: audit.Facts) -> None:
        facts.order["orders"]["rows"].append(order_row("stuck", "PENDING", owes="outcome"))

    def unsettled(facts: audit.Facts) -> None:
        facts.order["orders"]["rows"][0][-1] = "settling"

    assert violations(stuck) == ["deadline: order stuck: still PENDING 240s past its deadline"]
    assert violations(unsettled) == [
        "settle: order done: COMPLETED, still owed its settling 300s after it ended"
    ]


def test_orders_still_in_flight_are_counted_not_judged() -> None:
    def running(facts: audit.Facts) -> None:
        facts.order["orders"]["rows"][0] = order_row(
            "done",
            "PENDING",
            deadline_at=(NOW + timedelta(seconds=20)).isoformat(),
            owes="outcome",
        )

    facts = books()
    running(facts)
    report = audit.check(facts, NOW)
    assert report.counts["in flight"] == 1
    assert [str(v) for v in report.violations] == [], "money held or spent is not judged yet"


def test_something_held_for_an_order_nobody_opened_is_reported() -> None:
    found = violations(
        lambda facts: facts.user["held"]["rows"].append(["ghost", "reserved", 5, "u"])
    )
    assert "held: order ghost: user holds ['reserved', 5] for an unknown order" in found


def test_the_audit_reads_exactly_the_services_declared_as_audited() -> None:
    """`Facts` names each audited service's typed record; a service that starts or stops
    answering `AUDIT_FACTS` must change it too."""
    assert [f.name for f in fields(audit.Facts)] == [s.name for s in SERVICES if s.audited]
