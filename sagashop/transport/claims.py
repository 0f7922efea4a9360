"""Delivery claims: Pub/Sub gives every subscriber every message, so when several processes run
one service, each delivery is claimed first (SET NX on its id) and only the winner handles it."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis


class DeliveryClaims:
    def __init__(self, redis: Redis, ttl_ms: int = 60_000) -> None:
        self._redis = redis
        self._ttl_ms = ttl_ms

    async def claim(self, keys: Sequence[str]) -> list[bool]:
        """Try every key in one round trip: True where this process won it."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, 1, nx=True, px=self._ttl_ms)
            return [bool(ok) for ok in await pipe.execute()]
