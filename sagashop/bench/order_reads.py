"""The reads that grow with the order table: `/summary` and `GET /orders?status=&limit=`.

    .venv/bin/python -m sagashop.bench.order_reads write --database-url URL [--orders 100000]
    .venv/bin/python -m sagashop.bench.order_reads time --url http://127.0.0.1:3000 [--times 30]

`write` puts orders straight into the order service's `orders` table (migrated first, if it
needs to be), as a day of trading leaves them: most completed, some
cancelled by each service, and the last few still pending (due in an hour, so that the sweep
leaves them alone while the reads are timed). `time` asks each read `--times` times, one after the
other, of a running system (start it with `--rate-limit off`), and prints the median and the
slowest in milliseconds. docs/performance.md has the before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from sagashop.names import ServiceName
from sagashop.store import Store

COLUMNS = (
    "id, user_id, item_id, quantity, unit_price, total_amount, status, failure_reason, "
    "created_at, updated_at, deadline_at, owes, retry_at, nudges, backoff"
)
ENDINGS = [
    (0.80, "COMPLETED", None),
    (0.09, "CANCELLED", "payment: declined by the mock provider"),
    (0.05, "CANCELLED", "user: balance too low: has 500, needs 1000"),
    (0.03, "CANCELLED", "inventory: bag is full: 0 free slots, 1 needed"),
    (0.03, "CANCELLED", "item: out of stock: 0 left, 1 requested"),
]
CHUNK = 2_000
PENDING = 50
"""The latest orders, still running."""
READS = (
    "/summary",
    "/orders?limit=50",
    "/orders?status=PENDING&limit=50",
    "/orders?status=COMPLETED&limit=50",
    "/orders?status=CANCELLED&limit=50",
)


def orders(count: int, seed: int = 7) -> list[tuple[Any, ...]]:
    """`count` orders placed over the last day, oldest first."""
    chance = random.Random(seed)
    users = [str(uuid.UUID(int=chance.getrandbits(128))) for _ in range(1_000)]
    items = [str(uuid.UUID(int=chance.getrandbits(128))) for _ in range(20)]
    now = datetime.now(UTC)
    start = now - timedelta(days=1)
    rows = []
    for n in range(count):
        placed = start + timedelta(seconds=86_400 * n / count)
        pending = n >= count - PENDING
        _, status, reason = chance.choices(ENDINGS, weights=[e[0] for e in ENDINGS])[0]
        status, reason = ("PENDING", None) if pending else (status, reason)
        due = now + timedelta(hours=1)
        rows.append(
            (
                str(uuid.UUID(int=chance.getrandbits(128))),
                chance.choice(users),
                chance.choice(items),
                1,
                1_000,
                1_000,
                status,
                reason,
                placed,
                placed + timedelta(milliseconds=40),
                due if pending else placed + timedelta(seconds=30),
                "outcome" if pending else None,
                due if pending else None,
                0,
                0,
            )
        )
    return rows


async def write(database_url: str, count: int) -> None:
    """Through the order service's own store (its tables at the latest migration), in chunks
    of one INSERT each: the values are this script's own, written out as SQL literals."""
    rows = orders(count)
    store = Store({ServiceName.ORDER: database_url}, {ServiceName.ORDER: "sagashop.store.order"})
    loop = asyncio.get_running_loop()
    await loop.create_task(store.open(), context=store.context())
    try:
        await loop.create_task(_insert(store, rows), context=store.context())
    finally:
        await loop.create_task(store.close(), context=store.context())
    print(f"{count} orders written")


async def _insert(store: Store, rows: list[tuple[Any, ...]]) -> None:
    connection = store.tortoise.connections.get(ServiceName.ORDER)
    for start in range(0, len(rows), CHUNK):
        values = ", ".join(
            "(" + ", ".join(_literal(value) for value in row) + ")"
            for row in rows[start : start + CHUNK]
        )
        await connection.execute_script(f"INSERT INTO orders ({COLUMNS}) VALUES {values}")


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    text = value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"


async def time_reads(url: str, times: int) -> None:
    async with aiohttp.ClientSession(base_url=url) as http:
        for path in READS:
            spent = []
            for _ in range(times):
                started = time.perf_counter()
                async with http.get(path) as answer:
                    assert answer.status == 200, (path, answer.status, await answer.text())
                    await answer.read()
                spent.append((time.perf_counter() - started) * 1000)
            median, slowest = statistics.median(spent), max(spent)
            print(f"{path:40} median {median:8.2f} ms   slowest {slowest:8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    writing = commands.add_parser("write")
    writing.add_argument("--database-url", required=True)
    writing.add_argument("--orders", type=int, default=100_000)
    timing = commands.add_parser("time")
    timing.add_argument("--url", default="http://127.0.0.1:3000")
    timing.add_argument("--times", type=int, default=30)
    args = parser.parse_args()
    if args.command == "write":
        asyncio.run(write(args.database_url, args.orders))
    else:
        asyncio.run(time_reads(args.url, args.times))


if __name__ == "__main__":
    main()
