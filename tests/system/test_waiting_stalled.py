"""A read that waits for an order that does not end answers when its wait runs out, in the
order service's own process and through another process's front door."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from sagashop.actors import SERVICE_NAMES
from tests.support import Shop, make_settings, started_shop


@pytest.fixture
async def stalled(redis_url: str, tmp_path: Path) -> AsyncIterator[tuple[Shop, Shop]]:
    """A system without its payment service, so every saga stalls after the item's step;
    with a front door of its own that runs no service, to wait across processes' channels."""
    without_payment = tuple(name for name in SERVICE_NAMES if name != "payment")
    settings = make_settings(redis_url, tmp_path, None, services=without_payment)
    front = replace(settings, services=())
    async with started_shop(settings) as shop, started_shop(front) as door:
        yield shop, door


@pytest.mark.parametrize("through", ["the service's own node", "another node"])
async def test_a_wait_runs_out_with_the_order_still_pending(
    stalled: tuple[Shop, Shop], through: str
) -> None:
    shop, door = stalled
    reader = shop if through == "the service's own node" else door
    user, item = await shop.new_user(), await shop.new_item()
    placed = await shop.buy(user, item)
    loop = asyncio.get_running_loop()

    started = loop.time()
    status = await reader.ok("GET", f"/orders/{placed['id']}/status?wait=0.5")
    waited = loop.time() - started

    assert status["status"] == "PENDING"
    assert waited >= 0.5
