"""The audit: a plain function of what the services report, and the same check run against a
real system, by `GET /audit` and by `python run.py audit`."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from sagashop import audit
from sagashop.config import to_flags
from tests.support import Shop

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LONG_AGO = (NOW - timedelta(minutes=5)).isoformat()


def order_row(order_id: str, status: str, **changes: Any) -> list[Any]:
    row = {
        "id": order_id,
        "status": status,
        "user": "u",
        "item": "i",
        "quantity": 2,
        "total": 2_000,
        "created": LONG_AGO,
        "updated": LONG_AGO,
        "deadline": (NOW - timedelta(minutes=4)).isoformat(),
        "owes": None,
        **changes,
    }
    return list(row.values())


def books() -> dict[str, Any]:
    """One completed order (2 x 1000) and one cancelled one, all in order."""
    return {
        "order": {"orders": [order_row("done", "COMPLETED"), order_row("undone", "CANCELLED")]},
        "user": {
            "users": [["u", 10_000, 8_000]],
            "held": [["done", "confirmed", 2_000, "u"], ["undone", "released", 2_000, "u"]],
        },
        "inventory": {
            "bags": [["u", 20, 18]],
            "contents": [["u", "i", 2]],
            "held": [["done", "confirmed", 2, "u", "i"], ["undone", "released", 2, "u", "i"]],
        },
        "item": {
            "items": [["i", 50, 48]],
            "held": [["done", "confirmed", 2, "i"], ["undone", "voided", 2, "i"]],
        },
        "payment": {"payments": [["done", "captured", 2_000], ["undone", "declined", 2_000]]},
    }


def violations(change: Callable[[dict[str, Any]], None]) -> list[str]:
    facts = books()
    change(facts)
    return [str(v) for v in audit.check(facts, NOW).violations]


def test_books_in_order_pass() -> None:
    report = audit.check(books(), NOW)
    assert report.ok
    assert report.counts == {"users": 1, "items": 1, "orders": 2, "settled": 2, "in flight": 0}


def test_money_that_appeared_is_reported_with_its_amount() -> None:
    found = violations(lambda facts: facts["user"]["users"][0].__setitem__(2, 8_500))
    assert found == [
        "money: user u: opening 10000 != balance 8500 + held or used 2000 (off by -500)",
        "money: all users: opening 10000 != balances 8500 + captured payments 2000 (off by -500)",
    ]


def test_stock_that_vanished_is_reported() -> None:
    found = violations(lambda facts: facts["item"]["items"][0].__setitem__(2, 47))
    assert found == ["stock: item i: opening 50 != stock 47 + held or used 2 (off by 1)"]


def test_a_bag_must_hold_what_was_delivered() -> None:
    found = violations(lambda facts: facts["inventory"]["contents"][0].__setitem__(2, 3))
    assert found == ["bag: user u: holds 3 of item i, but 2 were delivered"]


def test_a_settled_order_must_not_leave_anything_held() -> None:
    def still_charged(facts: dict[str, Any]) -> None:
        facts["payment"]["payments"][1][1] = "captured"

    def not_confirmed(facts: dict[str, Any]) -> None:
        facts["inventory"]["held"][0][1] = "reserved"

    assert violations(still_charged) == [
        "held: order undone: CANCELLED, but payment has ('captured', 2000)",
        "money: all users: opening 10000 != balances 8000 + captured payments 4000 (off by -2000)",
    ]
    assert violations(not_confirmed) == [
        "bag: user u: holds 2 of item i, but 0 were delivered",
        "held: order done: COMPLETED, but inventory has ('reserved', 2)",
    ]


def test_an_order_left_open_past_its_deadline_is_reported() -> None:
    def stuck(facts: dict[str, Any]) -> None:
        facts["order"]["orders"].append(order_row("stuck", "PENDING", owes="outcome"))

    def unsettled(facts: dict[str, Any]) -> None:
        facts["order"]["orders"][0][-1] = "settling"

    assert violations(stuck) == ["deadline: order stuck: still PENDING 240s past its deadline"]
    assert violations(unsettled) == [
        "settle: order done: COMPLETED, still owed its settling 300s after it ended"
    ]


def test_orders_still_in_flight_are_counted_not_judged() -> None:
    def running(facts: dict[str, Any]) -> None:
        facts["order"]["orders"][0] = order_row(
            "done", "PENDING", deadline=(NOW + timedelta(seconds=20)).isoformat(), owes="outcome"
        )

    facts = books()
    running(facts)
    report = audit.check(facts, NOW)
    assert report.counts["in flight"] == 1
    assert [str(v) for v in report.violations] == [], "money held or spent is not judged yet"


def test_something_held_for_an_order_nobody_opened_is_reported() -> None:
    found = violations(lambda facts: facts["user"]["held"].append(["ghost", "reserved", 5, "u"]))
    assert "held: order ghost: user holds ['reserved', 5] for an unknown order" in found


async def run_audit_command(shop: Shop) -> tuple[int, str]:
    assert shop.node is not None
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sagashop",
        "audit",
        *to_flags(shop.node.settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    report, _log = await child.communicate()
    return await child.wait(), report.decode()


async def settle_some_purchases(shop: Shop) -> str:
    user = await shop.new_user(balance=5_000)
    item = await shop.new_item(price=2_000, stock=5)
    for quantity in (1, 3, 1):  # done, too dear, done
        await shop.settle((await shop.buy(user, item, quantity))["id"])
    return user


async def give_away_money(shop: Shop, user: str) -> None:
    """Change a balance behind the user service's back, as a bug would."""
    assert shop.node is not None
    url = shop.node.settings.database_url_for("user")
    if url.startswith("sqlite://"):
        with sqlite3.connect(url.removeprefix("sqlite://").split("?")[0]) as db:
            db.execute("UPDATE users SET balance = balance + 1 WHERE id = ?", (user,))
        return
    db = await asyncpg.connect(url)
    try:
        await db.execute("UPDATE users SET balance = balance + 1 WHERE id = $1", user)
    finally:
        await db.close()


async def test_the_audit_of_a_real_system_passes_then_finds_a_planted_error(shop: Shop) -> None:
    user = await settle_some_purchases(shop)

    clean = await shop.ok("GET", "/audit")
    code, printed = await run_audit_command(shop)
    assert clean["ok"], clean["violations"]
    assert (code, printed.splitlines()[0][:8]) == (0, "audit ok")

    await give_away_money(shop, user)
    found = await shop.ok("GET", "/audit")
    code, printed = await run_audit_command(shop)

    planted = f"money: user {user}: opening 5000 != balance 1001 + held or used 4000 (off by -1)"
    assert planted in found["violations"]
    assert code == 1
    assert planted in printed
