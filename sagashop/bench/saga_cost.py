"""What one purchase costs: SQL statements, and time from POST /orders until nothing is owed.

    .venv/bin/python -m sagashop.bench.saga_cost [--purchases 20] [--together 500] \
        [--database-url …] [--bus pubsub|streams|rabbitmq]

Starts the whole system in this process (embedded Redis, SQLite files in a temporary directory
unless --database-url is given) and prints the figures. With `--bus rabbitmq` the broker is
AMQP_URL's, and the run's namespace is deleted from it afterwards. The statements are counted from
Tortoise's query log while nothing polls: once with purchases placed one at a time (each saga
alone, so every step is a batch of one), once with `--together` purchases placed at once (the
steps batched as they are under load). The latency is measured separately, one purchase at a
time, polling the order every 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from sagashop.actors import SERVICE_NAMES
from sagashop.config import Settings
from sagashop.embedded_redis import embedded_redis
from sagashop.http import create_app
from sagashop.transport import NO_AMQP_URL, TRANSPORTS, Channels
from sagashop.transport.rabbitmq import forget_namespace

Client = TestClient[Any, Any]

SQL_VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE"}
BACKGROUND = re.compile(r'"retry_at"<=|"published"=(\?|\$\d+) AND "handled_at"<')
"""What the periodic work reads whether or not anyone buys (the order service's sweep, the
relay's look for unpublished outcomes): counted apart, since it depends on time, not purchases."""


class StatementCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.verbs: Counter[str] = Counter()
        self.background = 0

    @property
    def total(self) -> int:
        return sum(self.verbs.values())

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        words = text.split(None, 1)
        if not words or words[0].upper() not in SQL_VERBS:
            return
        if BACKGROUND.search(text):
            self.background += 1
        else:
            self.verbs[words[0].upper()] += 1


async def post(client: Client, path: str, body: dict[str, Any]) -> Any:
    async with client.post(path, json=body) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def new_buyer(client: Client, item: str) -> dict[str, Any]:
    """An order's body, for a user of its own."""
    user = (await post(client, "/users", {"username": "bench", "balance": 10**9}))["id"]
    return {"userId": user, "itemId": item, "quantity": 1}


async def closed(client: Client, order_id: str) -> None:
    while True:
        async with client.get(f"/orders/{order_id}") as response:
            order = await response.json()
            if order["owes"] is None:
                assert order["status"] == "COMPLETED", order
                return
        await asyncio.sleep(0.005)


async def measure(settings: Settings, purchases: int, together: int) -> dict[str, Any]:
    app = create_app(settings)
    async with TestServer(app) as server, Client(server) as client:
        item = (await post(client, "/items", {"name": "bench", "price": 1, "stock": 10**6}))["id"]
        # A user per purchase: a bag holds 20 items, and a purchase that does not fit is
        # cancelled half-way, which costs less than one that completes.
        buyers = [await new_buyer(client, item) for _ in range(1 + 2 * purchases + together)]
        await closed(client, (await post(client, "/orders", buyers.pop()))["id"])  # warm up

        with counting() as alone:
            for _ in range(purchases):
                await post(client, "/orders", buyers.pop())
                await asyncio.sleep(1.0)  # no polling while counting; a saga takes far less
        with counting() as under_load:
            await asyncio.gather(*(post(client, "/orders", buyers.pop()) for _ in range(together)))
            await quiet(under_load)

        latencies = []
        for _ in range(purchases):
            started = time.perf_counter()
            placed = await post(client, "/orders", buyers.pop())
            await closed(client, placed["id"])
            latencies.append(time.perf_counter() - started)
    return {"alone": alone, "together": under_load, "latencies": latencies}


STATEMENT_LOGS = ("tortoise.db_client", "sagashop.store.batch")
"""Tortoise's statements, and the batches' own."""


@contextmanager
def counting() -> Iterator[StatementCounter]:
    counter = StatementCounter()
    loggers = [logging.getLogger(name) for name in STATEMENT_LOGS]
    before = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.propagate = False  # counted, not printed
        logger.addHandler(counter)
    try:
        yield counter
    finally:
        for logger, (level, propagate) in zip(loggers, before, strict=True):
            logger.removeHandler(counter)
            logger.setLevel(level)
            logger.propagate = propagate


async def quiet(counter: StatementCounter) -> None:
    """Until no statement ran for a second: every saga has ended (nothing is read meanwhile)."""
    seen = -1
    while seen != counter.total:
        seen = counter.total
        await asyncio.sleep(1.0)


def print_statements(how: str, counted: StatementCounter, purchases: int) -> None:
    per = {verb: n / purchases for verb, n in sorted(counted.verbs.items())}
    print(
        f"SQL statements per purchase, {how}: {sum(per.values()):.1f} "
        f"({', '.join(f'{n:.1f} {verb}' for verb, n in per.items())}); "
        f"besides, {counted.background} periodic reads while counting"
    )


async def measured(settings: Settings, purchases: int, together: int) -> dict[str, Any]:
    """`measure`, and the run's namespace deleted from the broker after it (durable there)."""
    try:
        return await measure(settings, purchases, together)
    finally:
        if settings.amqp_url is not None:
            await forget_namespace(settings.amqp_url, Channels(settings.namespace), SERVICE_NAMES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--purchases", type=int, default=20)
    parser.add_argument("--together", type=int, default=500)
    parser.add_argument("--database-url")
    parser.add_argument("--bus", default="pubsub", choices=TRANSPORTS)
    args = parser.parse_args()
    amqp_url = os.environ.get("AMQP_URL") if args.bus == "rabbitmq" else None
    if args.bus == "rabbitmq" and not amqp_url:
        parser.error(NO_AMQP_URL)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as workdir, embedded_redis(Path(workdir) / "r") as url:
        settings = Settings(
            redis_url=url,
            data_dir=Path(workdir) / "data",
            database_url=args.database_url,
            bus=args.bus,
            amqp_url=amqp_url,
            namespace=f"saga-cost-{uuid.uuid4().hex[:8]}",
            payment_failure_rate=0.0,
            port=0,
            rate_limit="off",  # it makes hundreds of users a second
        )
        figures = asyncio.run(measured(settings, args.purchases, args.together))
    latencies = sorted(figures["latencies"])
    print_statements("one at a time", figures["alone"], args.purchases)
    print_statements(f"{args.together} at once", figures["together"], args.together)
    print(
        f"POST /orders until nothing is owed, {len(latencies)} purchases one at a time: "
        f"median {statistics.median(latencies) * 1000:.0f} ms, "
        f"slowest {latencies[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
