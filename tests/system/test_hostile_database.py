"""The database goes away under a running system: a read is told 503 (`try again shortly`),
never 500, and a write the same after a few seconds of retries; once it is back the system
answers again, its books whole.
PostgreSQL reached through a proxy the test cuts (every connection dropped, new ones refused)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sagashop.chaos.proxy import proxy_to
from sagashop.saga.retry import CALLER_WAITS
from tests.support import database, eventually, make_settings, started_shop


def writes(user: str, item: str) -> list[tuple[str, dict[str, Any]]]:
    """Writes a caller waits for: each is retried a few seconds, then told 503 (not 500, and not
    after the steps' whole budget of 30 s)."""
    return [
        ("/users", {"username": "late", "balance": 1_000}),
        ("/orders", {"userId": user, "itemId": item, "quantity": 1}),
    ]


@pytest.mark.postgres
async def test_a_database_gone_away_answers_503_and_the_system_comes_back(
    redis_url: str, tmp_path: Path
) -> None:
    async with database("postgres") as url:
        assert url is not None
        where = urlsplit(url)
        async with proxy_to(where.hostname or "127.0.0.1", where.port or 5432) as proxy:
            through = url.replace(f"{where.hostname}:{where.port}", f"127.0.0.1:{proxy.port}")
            async with started_shop(make_settings(redis_url, tmp_path, through)) as shop:
                user, item = await shop.new_user(balance=5_000), await shop.new_item()
                await proxy.cut()
                for path in (f"/user/{user}/balance", "/items", f"/user/{user}/orders"):
                    status, answer = await shop.call("GET", path)
                    assert (status, answer["error"]["code"]) == (503, "service_unavailable"), path
                for path, body in writes(user, item):
                    started = time.monotonic()
                    status, answer = await shop.call("POST", path, json=body)
                    assert (status, answer["error"]["code"]) == (503, "service_unavailable"), path
                    waited = time.monotonic() - started
                    assert waited < CALLER_WAITS + 3, f"{path} answered after {waited:.1f}s"
                await proxy.restore()
                balance = await eventually(
                    lambda: shop.call("GET", f"/user/{user}/balance"),
                    lambda answered: answered[0] == 200,
                )
                assert balance[1]["balance"] == 5_000
                done = await shop.settle((await shop.buy(user, item))["id"])
                assert done["status"] == "COMPLETED"
