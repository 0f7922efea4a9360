"""A store written by main before it had migrations starts on today's code with its data, is
migrated, and completes a purchase for a player it already had; the books still balance."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stores import facts, written_before_migrations
from tests.support import BACKENDS, make_settings, started_shop


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_store_from_before_migrations_completes_a_purchase(
    backend: str, redis_url: str, tmp_path: Path
) -> None:
    known = facts(backend)
    async with (
        written_before_migrations(backend, tmp_path) as url,
        started_shop(make_settings(redis_url, tmp_path, url)) as shop,
    ):
        assert len(await shop.orders_of(known["user"])) == known["user_orders"]
        order = await shop.buy(known["user"], known["sword"])
        assert (await shop.settle(order["id"]))["status"] == "COMPLETED"
        assert await shop.balance(known["user"]) == known["balance"] - order["totalAmount"]
        assert await shop.stock(known["sword"]) == known["stock"] - 1
        assert len(await shop.orders_of(known["user"])) == known["user_orders"] + 1
        audit = await shop.ok("GET", "/audit")
        assert (audit["ok"], audit["counts"]["orders"]) == (True, known["orders"] + 1), audit
