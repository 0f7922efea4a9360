"""The audit reads a service's tables inside `snapshot`: a step that commits between two of its
reads shows up in neither, so the books it reads balance even while sagas run."""

from __future__ import annotations

import asyncio
from typing import Any

from sagashop.events import Event, EventName
from sagashop.store.facts import Table, snapshot, table
from sagashop.store.user import BalanceReservation, User
from tests.store.harness import Steps


def rows_of(found: Table, user_id: str, key: str = "user_id") -> list[dict[str, Any]]:
    """The rows of one user, by column name (other tests share the tables)."""
    rows = (dict(zip(found["columns"], row, strict=True)) for row in found["rows"])
    return [row for row in rows if str(row[key]) == user_id]


async def test_a_reservation_committed_between_two_reads_shows_in_neither(steps: Steps) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)
    reserve = steps.step("user", purchase.created.name)

    async def read_the_books() -> tuple[Table, Table, asyncio.Task[Event | None], bool]:
        async with snapshot("user"):
            users = await table(User, "id", "balance")
            # Takes 1_000 from the balance and holds it, both in one transaction of its own.
            reserving = steps.spawn(steps.logs["user"].run(reserve, purchase.created))
            # PostgreSQL lets it commit at once; on SQLite it waits for the snapshot to end.
            done, _ = await asyncio.wait({reserving}, timeout=1)
            held = await table(BalanceReservation, "user_id", "amount")
        return users, held, reserving, reserving in done

    users, held, reserving, committed_meanwhile = await steps.within(read_the_books())

    if steps.backend == "postgres":
        assert committed_meanwhile, "the reservation should commit while the snapshot is open"
    (user,) = rows_of(users, purchase.user_id, key="id")
    amounts = [row["amount"] for row in rows_of(held, purchase.user_id)]
    assert user["balance"] + sum(amounts) == 5_000, (
        f"balance {user['balance']} and held {amounts} were read at different moments"
    )

    reserved = await asyncio.wait_for(reserving, timeout=10)
    assert reserved is not None
    assert reserved.name is EventName.BALANCE_RESERVED
    assert (await steps.holdings(purchase)).balance == 4_000
