"""Races between two writers: two processes (replicas of one service) each take a batch in one
transaction on the same database, each holding its transaction open a while as the other tries.
On SQLite the second waits for the write lock, on PostgreSQL for the rows the first locked; the
guards (relative writes never below zero, states changed only from what was read, a unique step
row) make a change made on a stale read fail rather than make or lose money or items."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from math import inf
from pathlib import Path
from typing import Any

import pytest

from sagashop.events import Event, EventName, new_id
from sagashop.store import batch
from sagashop.store.batch import Script, Sql, Statement
from sagashop.store.book import Book
from sagashop.store.errors import StoreConflict
from sagashop.store.reservations import ReservationState
from sagashop.store.user import HOLDS, USERS
from tests.store.harness import Holdings, Purchase, Steps

REPO = Path(__file__).resolve().parents[2]
HOLD = 1.0
"""Seconds each racer keeps its transaction open after its first decision."""


async def race(steps: Steps, service: str, batches: list[list[Event]]) -> list[dict[str, Any]]:
    """Each batch taken by a racer of its own, all let go at once; what each reported."""
    url = steps.store.urls[service]
    racers = [await _racer(service, url, events) for events in batches]
    for racer in racers:
        assert racer.stdout is not None
        ready = await asyncio.wait_for(racer.stdout.readline(), timeout=60)
        assert ready == b"ready\n", ready + await _errors(racer)
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write(b"go\n")
    reports = []
    for racer in racers:
        out, err = await asyncio.wait_for(racer.communicate(), timeout=60)
        assert racer.returncode == 0, err.decode()[-3000:]
        reports.append(json.loads(out))
    return reports


async def _racer(service: str, url: str, events: list[Event]) -> asyncio.subprocess.Process:
    raw = json.dumps([event.to_dict() for event in events])
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tests.store.racer", service, url, str(HOLD), raw),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _errors(racer: asyncio.subprocess.Process) -> bytes:
    assert racer.stderr is not None
    return await racer.stderr.read()


def one_held_while_the_other_tried(reports: list[dict[str, Any]]) -> None:
    """The racer that decided first held its transaction while the other began; the other
    decided (if it had anything left to decide) only once the first was done: it waited for
    the rows the first read (PostgreSQL), or for the database (SQLite)."""
    first, second = sorted((r["moments"] for r in reports), key=lambda m: m.get("inside", inf))
    assert second["tried"] < first["held"], "the second began while the first held its batch"
    assert second.get("inside", second["done"]) >= first["held"], "and waited for the first"


def emitted(reports: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return sorted(
        (outcome["name"], outcome["reason"]) for r in reports for outcome in r["outcomes"]
    )


@pytest.mark.parametrize(
    ("service", "cause", "reserved", "refused", "left"),
    [
        pytest.param(
            "user",
            EventName.ORDER_CREATED,
            "balance.reserved",
            ("balance.rejected", "user: balance too low: has 0, needs 1000"),
            Holdings(balance=0, stock=5, free=20),
            id="one player's balance",
        ),
        pytest.param(
            "item",
            EventName.INVENTORY_RESERVED,
            "item.reserved",
            ("item.rejected", "item: out of stock: 0 left, 1 requested"),
            Holdings(balance=5_000, stock=0, free=20),
            id="one item's stock",
        ),
    ],
)
async def test_two_replicas_reserving_one_thing_take_exactly_what_is_there(
    steps: Steps,
    service: str,
    cause: EventName,
    reserved: str,
    refused: tuple[str, str],
    left: Holdings,
) -> None:
    """Enough balance and stock for five orders of one each, and six orders racing for them."""
    purchase = await steps.purchase(balance=5_000, price=1_000, stock=5)
    events = [_for_new_order(purchase, cause) for _ in range(6)]

    reports = await race(steps, service, [events[:3], events[3:]])

    one_held_while_the_other_tried(reports)
    assert emitted(reports) == [refused] + [(reserved, None)] * 5
    assert await steps.holdings(purchase) == left


async def test_two_replicas_reserving_one_bag_take_exactly_its_free_slots(steps: Steps) -> None:
    purchase = await steps.purchase(balance=50_000, price=1_000, stock=50, quantity=4)
    assert await steps.take("inventory", purchase.then(EventName.BALANCE_RESERVED)) is not None
    events = [_for_new_order(purchase, EventName.BALANCE_RESERVED) for _ in range(6)]

    reports = await race(steps, "inventory", [events[:3], events[3:]])

    one_held_while_the_other_tried(reports)
    assert (
        emitted(reports)
        == [("inventory.rejected", "inventory: bag is full: 0 free slots, 4 needed")] * 2
        + [("inventory.reserved", None)] * 4
    )
    assert (await steps.holdings(purchase)).free == 0


async def test_two_replicas_giving_a_player_their_first_bag_at_once_hold_exactly_its_slots(
    steps: Steps,
) -> None:
    """No bag row yet, so nothing to lock: on PostgreSQL both replicas decide at once, both
    insert the bag, and the unique key sends the later one back to take its batch again."""
    purchase = await steps.purchase(balance=50_000, price=1_000, stock=50, quantity=4)
    events = [_for_new_order(purchase, EventName.BALANCE_RESERVED) for _ in range(6)]

    reports = await race(steps, "inventory", [events[:3], events[3:]])

    first, second = sorted((r["moments"] for r in reports), key=lambda m: m["inside"])
    assert second["tried"] < first["held"], "the second began while the first held its batch"
    assert (
        emitted(reports)
        == [("inventory.rejected", "inventory: bag is full: 0 free slots, 4 needed")]
        + [("inventory.reserved", None)] * 5
    )
    assert (await steps.holdings(purchase)).free == 0
    if steps.backend == "postgres":
        assert sum(report["attempts"] for report in reports) == 3, reports


async def test_one_event_taken_by_two_replicas_at_once_acts_once_and_both_agree(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)

    reports = await race(steps, "user", [[purchase.created], [purchase.created]])

    one_held_while_the_other_tried(reports)
    first, second = (report["outcomes"][0] for report in reports)
    assert first == second, "the later one replays what the first recorded"
    assert first["name"] == "balance.reserved"
    assert (await steps.holdings(purchase)).balance == 4_000
    assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.reserved")]


@pytest.mark.parametrize("meanwhile", ["spent the balance", "confirmed the hold"])
async def test_a_change_made_on_a_stale_read_fails_and_writes_nothing(
    steps: Steps, meanwhile: str
) -> None:
    """As if a lock had been missed: between the batch's read and its writes, another writer
    changes a row it read. The guarded write finds fewer rows than it changed: a conflict, to
    take again, and nothing of the batch stays (nor, here, the other writer's change, made in
    the same transaction)."""
    purchase = await steps.purchase(balance=2_000, price=1_000)
    assert await steps.take("user", purchase.created) is not None
    event = purchase.created

    def stale(sql: Sql) -> Script[None]:
        book = Book((USERS, HOLDS), datetime.now(UTC))
        yield from batch.load(sql, book, [event])
        user, hold = book.get(USERS, event), book.get(HOLDS, event)
        assert user is not None
        assert hold is not None
        if meanwhile == "spent the balance":
            book.add(user, balance=-1_000)  # read 1,000: enough, by what was read
        else:
            book.set(hold, state=ReservationState.RELEASED)  # read "reserved"
        yield _meanwhile(sql, meanwhile, purchase)
        yield from batch.save(sql, book)

    with pytest.raises(StoreConflict, match="changed since they were read"):
        await steps.within(batch.run("user", stale))

    assert (await steps.holdings(purchase)).balance == 1_000
    assert await steps.held("user", purchase.order_id) == "reserved"


def _meanwhile(sql: Sql, what: str, purchase: Purchase) -> Statement:
    mark = "$1::uuid" if sql is batch.POSTGRES else "?"
    if what == "spent the balance":
        return Statement(
            f'UPDATE "users" SET "balance" = 0 WHERE "id" = {mark}', [purchase.user_id]
        )
    return Statement(
        f'UPDATE "user_reservations" SET "state" = \'confirmed\' WHERE "order_id" = {mark}',
        [purchase.order_id],
    )


def _for_new_order(purchase: Purchase, name: EventName) -> Event:
    return Event(**{**_fields(purchase.created), "name": name, "order_id": new_id()})


def _fields(event: Event) -> dict[str, Any]:
    return {
        "name": event.name,
        "order_id": event.order_id,
        "user_id": event.user_id,
        "item_id": event.item_id,
        "quantity": event.quantity,
        "amount": event.amount,
    }
