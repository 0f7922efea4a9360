"""`/readyz` says 503, naming what cannot serve, when one of the process's actors has stopped.
A module of its own: it starts a system of its own, and only one may be open in a process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support import make_settings, started_shop


async def test_a_stopped_actor_makes_the_process_not_ready(redis_url: str, tmp_path: Path) -> None:
    async with started_shop(make_settings(redis_url, tmp_path, None)) as shop:
        assert shop.node is not None
        await asyncio.to_thread(shop.node.actors["notification"].stop)

        status, answer = await shop.call("GET", "/readyz")

    assert (status, answer["ready"]) == (503, False)
    assert answer["checks"]["actor notification"] == "stopped"
    assert answer["checks"]["actor order"] == "ok"
