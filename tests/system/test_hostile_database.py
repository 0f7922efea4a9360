"""The database goes away under a running system: a read is told 503 (`try again shortly`),
never 500, and once it is back the system answers again, its books whole.
PostgreSQL reached through a proxy the test cuts (every connection dropped, new ones refused)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sagashop.chaos.proxy import proxy_to
from tests.support import database, eventually, make_settings, started_shop


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
                # reads; a write is told the same once its retries (about 30 s) are spent
                for path in (f"/user/{user}/balance", "/items", f"/user/{user}/orders"):
                    status, answer = await shop.call("GET", path)
                    assert (status, answer["error"]["code"]) == (503, "service_unavailable"), path
                await proxy.restore()
                balance = await eventually(
                    lambda: shop.call("GET", f"/user/{user}/balance"),
                    lambda answered: answered[0] == 200,
                )
                assert balance[1]["balance"] == 5_000
                done = await shop.settle((await shop.buy(user, item))["id"])
                assert done["status"] == "COMPLETED"
