"""Delivery claims: Pub/Sub gives every subscriber every message, so when several processes run
one service, each delivery is claimed first (SET NX on its id) and only the winner handles it.

A claim's value is signed with the bus key (`Signer`), naming the process that holds it: whoever
can write to Redis without a bus key cannot squat a claim to keep a delivery from its service.
A claim lost to a value no key signed is counted (`squatted_claim`) and taken over, in one
compare-and-set, so that of the processes that find it squatted one takes it.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from sagashop.transport.signing import Rejected, Signer, SquattedClaim

TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
end
return 0
"""
"""Replace the claim's value if it is still the squatter's: one process of those that found it
squatted takes it."""


class DeliveryClaims:
    def __init__(self, redis: Redis, signer: Signer, holder: str, ttl_ms: int = 60_000) -> None:
        self._redis = redis
        self._signer = signer
        self._holder = holder
        self._ttl_ms = ttl_ms
        self._take_over = redis.register_script(TAKE_OVER)

    async def claim(self, keys: Sequence[str]) -> list[bool]:
        """Try every key in one round trip: True where this process won it (a second round trip
        only to look at those it lost)."""
        mine = [self._signer.sign(key, self._holder) for key in keys]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, token in zip(keys, mine, strict=True):
                pipe.set(key, token, nx=True, px=self._ttl_ms)
            won = [bool(ok) for ok in await pipe.execute()]
        lost = [n for n, ok in enumerate(won) if not ok]
        if lost:
            held = await self._redis.mget([keys[n] for n in lost])
            for n, value in zip(lost, held, strict=True):
                if value is not None and not self._genuine(keys[n], value):
                    won[n] = await self._taken_over(keys[n], value, mine[n])
        return won

    def _genuine(self, key: str, value: str | bytes) -> bool:
        try:
            self._signer.open(key, value)
        except Rejected:
            return False
        return True

    async def _taken_over(self, key: str, squatted: str | bytes, mine: str) -> bool:
        self._signer.reject(key, SquattedClaim("a claim no key of this system signed"), squatted)
        return bool(await self._take_over(keys=[key], args=[squatted, mine, self._ttl_ms]))
