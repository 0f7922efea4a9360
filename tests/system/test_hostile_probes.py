"""The probes and the scrape (`/healthz`, `/readyz`, `/health`, `/metrics`) are limited too:
each `/readyz` pings Redis, every database and every actor, so a flood of them from one address
(or of forged tokens on `/health`) is refused with 429, while another address is still probed
and a caller past its own limit still is. Auth on, as where a limit is on by default."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from sagashop.http.limits import PROBE_LIMIT
from sagashop.tokens import SigningKey
from tests.support import Shop, make_settings, started_shop
from tests.system.test_limits import get_from

KEYS = (SigningKey("k1", "a-signing-key-for-the-hostile-probe-tests"),)
FLOOD = 3 * int(PROBE_LIMIT.split("/")[0])


async def _flood(shop: Shop, source: str, path: str, **headers: Any) -> Counter[int]:
    url = shop.client.make_url(path)  # type: ignore[attr-defined]
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def one() -> int:
            async with session.get(url) as answer:
                await answer.read()
                return answer.status

        return Counter(await asyncio.gather(*(one() for _ in range(FLOOD))))


async def test_a_flood_of_probes_is_refused_and_another_address_is_still_probed(
    redis_url: str, tmp_path: Path
) -> None:
    settings = make_settings(
        redis_url, tmp_path, None, auth=True, auth_keys=KEYS, rate_limit="50/second"
    )
    async with started_shop(settings) as shop:
        ready = await _flood(shop, "127.0.0.2", "/readyz")
        forged = await _flood(shop, "127.0.0.4", "/health", Authorization="Bearer x.y.z")
        other = await get_from(shop, "127.0.0.3", "/readyz")

    assert ready[429] > 0, ready
    assert set(ready) == {200, 429}
    assert forged[429] > 0, forged
    assert set(forged) == {401, 429}
    assert other.status == 200
