"""What one purchase costs: SQL statements, and time from POST /orders until nothing is owed.

    .venv/bin/python bench/saga_cost.py [--purchases 20] [--database-url postgres://…]

Starts the whole system in this process (embedded Redis, SQLite files in a temporary directory
unless --database-url is given), places purchases one at a time and prints the figures. The
statements are counted from Tortoise's query log while nothing polls; the latency is measured
separately, polling the order every 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from sagashop.config import Settings
from sagashop.embedded_redis import embedded_redis
from sagashop.http import create_app

SQL_VERBS = {"SELECT", "INSERT", "UPDATE", "DELETE"}


class StatementCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.verbs: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        words = record.getMessage().split(None, 1)
        if words and words[0].upper() in SQL_VERBS:
            self.verbs[words[0].upper()] += 1


async def post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    async with client.post(path, json=body) as response:
        assert response.status == 201, await response.text()
        return await response.json()


async def closed(client: TestClient, order_id: str) -> None:
    while True:
        async with client.get(f"/orders/{order_id}") as response:
            if (await response.json())["owes"] is None:
                return
        await asyncio.sleep(0.005)


async def measure(settings: Settings, purchases: int) -> dict[str, Any]:
    app = create_app(settings)
    async with TestServer(app) as server, TestClient(server) as client:
        user = (await post(client, "/users", {"username": "bench", "balance": 10**9}))["id"]
        item = (await post(client, "/items", {"name": "bench", "price": 1, "stock": 10**6}))["id"]
        order = {"userId": user, "itemId": item, "quantity": 1}
        await closed(client, (await post(client, "/orders", order))["id"])  # warm up

        counter = StatementCounter()
        queries = logging.getLogger("tortoise.db_client")
        level = queries.level
        queries.setLevel(logging.DEBUG)
        queries.addHandler(counter)
        for _ in range(purchases):
            await post(client, "/orders", order)
            await asyncio.sleep(1.0)  # no polling while counting; a saga takes far less
        queries.removeHandler(counter)
        queries.setLevel(level)

        latencies = []
        for _ in range(purchases):
            started = time.perf_counter()
            await closed(client, (await post(client, "/orders", order))["id"])
            latencies.append(time.perf_counter() - started)
    return {"verbs": counter.verbs, "latencies": latencies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--purchases", type=int, default=20)
    parser.add_argument("--database-url")
    parser.add_argument("--bus", default="pubsub", choices=["pubsub", "streams"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as workdir, embedded_redis(Path(workdir) / "r") as url:
        settings = Settings(
            redis_url=url,
            data_dir=Path(workdir) / "data",
            database_url=args.database_url,
            bus=args.bus,
            payment_failure_rate=0.0,
            port=0,
        )
        figures = asyncio.run(measure(settings, args.purchases))
    verbs, latencies = figures["verbs"], sorted(figures["latencies"])
    per = {verb: n / args.purchases for verb, n in sorted(verbs.items())}
    print(
        f"SQL statements per purchase: {sum(per.values()):.0f} "
        f"({', '.join(f'{n:.0f} {verb}' for verb, n in per.items())})"
    )
    print(
        f"POST /orders until nothing is owed, {len(latencies)} purchases one at a time: "
        f"median {statistics.median(latencies) * 1000:.0f} ms, "
        f"slowest {latencies[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
