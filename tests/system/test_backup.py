"""The README's backup of the SQLite files (`sqlite3 FILE ".backup COPY"`, here through Python's
sqlite3 backup API, which is what `.backup` runs), taken once the process stopped, restores a
system whose books balance and that goes on selling.

Taken while the process runs, six copies made one after another are no consistent cut across
the services (an item held for an order the order file does not have yet, money captured that
the user file does not show spent): the README says so, and says what to do instead."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sagashop.actors import SERVICE_NAMES
from tests.support import make_settings, started_shop


def backup(data: Path, to: Path) -> None:
    """Each service's file, copied page by page, the WAL's committed pages included."""
    to.mkdir(parents=True)
    for service in SERVICE_NAMES:
        live = sqlite3.connect(data / f"{service}.sqlite3")
        copy = sqlite3.connect(to / f"{service}.sqlite3")
        try:
            live.backup(copy)
        finally:
            copy.close()
            live.close()


async def test_a_backup_of_the_stopped_system_restores_one_whose_books_balance(
    redis_url: str, tmp_path: Path
) -> None:
    data, saved = tmp_path / "data", tmp_path / "backup"
    async with started_shop(make_settings(redis_url, data, None)) as shop:
        user, item = await shop.new_user(balance=10_000), await shop.new_item(price=1_000)
        orders = [(await shop.buy(user, item))["id"] for _ in range(3)]
        for order_id in orders:
            await shop.settle(order_id)
    backup(data, saved)

    async with started_shop(make_settings(redis_url, saved, None)) as restored:
        for order_id in orders:
            assert (await restored.order(order_id))["status"] == "COMPLETED"
        report = await restored.ok("GET", "/audit")
        assert report["ok"], report["violations"]
        assert report["counts"]["orders"] == 3
        again = await restored.buy(user, item)
        assert (await restored.settle(again["id"]))["status"] == "COMPLETED"
        assert (await restored.ok("GET", f"/user/{user}/balance"))["balance"] == 6_000
