"""`/healthz` (the process is up) and `/readyz` (it can serve: Redis, its databases and its
actors all answer), as an orchestrator probes them."""

from __future__ import annotations

import pytest

from sagashop.actors import SERVICE_NAMES
from tests.support import Shop, on_systems

on_one_system = on_systems("sqlite-pubsub")  # probes read the process, not its transport


@on_one_system
async def test_a_live_process_says_so(shop: Shop) -> None:
    assert await shop.ok("GET", "/healthz") == {"status": "ok"}


@on_one_system
async def test_a_ready_process_names_everything_it_checked(shop: Shop) -> None:
    answer = await shop.ok("GET", "/readyz")

    expected = {
        "redis",
        *(f"database {name}" for name in SERVICE_NAMES),
        *(f"actor {name}" for name in SERVICE_NAMES),
    }
    assert answer["ready"] is True
    assert set(answer["checks"]) == expected
    assert set(answer["checks"].values()) == {"ok"}


@on_one_system
async def test_health_says_unready_exactly_when_readyz_does(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A supervisor reading either acts alike: a dead Redis made /readyz 503 while /health
    still said "ok"."""
    assert (await shop.ok("GET", "/health"))["status"] == "ok"
    node = shop.node
    assert node is not None
    checks = await node.readiness()

    async def redis_gone() -> dict[str, str]:
        return {**checks, "redis": "ConnectionError: gone"}

    monkeypatch.setattr(node, "readiness", redis_gone)
    status, ready = await shop.call("GET", "/readyz")
    health = await shop.ok("GET", "/health")
    assert (status, ready["ready"]) == (503, False)
    assert (health["status"], health["checks"]["redis"]) == ("unready", "ConnectionError: gone")
