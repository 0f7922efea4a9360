"""Whoever can write to Redis but holds no bus key cannot squat a delivery claim: a claim's
value is signed, a claim held by a value no key signed is counted (`squatted_claim`) and taken
over, by one of the processes that find it so, while a claim another process of the system
holds is left to it. Against the real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from sagashop.transport.claims import DeliveryClaims
from sagashop.transport.signing import Signer
from tests.support import TEST_BUS_KEYS

NAMESPACE = "claims-test"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True, encoding_errors="surrogateescape")
    try:
        yield client
    finally:
        await client.aclose()


def _process(redis: Redis, name: str) -> tuple[DeliveryClaims, Signer]:
    signer = Signer(TEST_BUS_KEYS, NAMESPACE)
    return DeliveryClaims(redis, signer, name), signer


def _key() -> str:
    return f"{NAMESPACE}:claim:user:{uuid.uuid4()}"


async def test_a_squatted_claim_is_counted_and_taken_over_by_one_process(redis: Redis) -> None:
    squatted = [_key() for _ in range(5)]
    for key in squatted:
        await redis.set(key, "1", nx=True, px=60_000)  # as `SET NS:claim:… 1 NX` did it
    (first, first_signer), (second, second_signer) = _process(redis, "a"), _process(redis, "b")

    won_first, won_second = await asyncio.gather(first.claim(squatted), second.claim(squatted))

    assert [a + b for a, b in zip(won_first, won_second, strict=True)] == [1] * 5
    counted = first_signer.rejected["squatted_claim"] + second_signer.rejected["squatted_claim"]
    assert counted >= 5


async def test_a_claim_another_process_holds_is_left_to_it(redis: Redis) -> None:
    keys = [_key() for _ in range(5)]
    (first, _), (second, second_signer) = _process(redis, "a"), _process(redis, "b")

    assert await first.claim(keys) == [True] * 5
    assert await second.claim(keys) == [False] * 5
    assert second_signer.rejected["squatted_claim"] == 0


async def test_a_claim_signed_for_another_key_is_squatted_too(redis: Redis) -> None:
    """A genuine claim's value copied onto another delivery's key does not pass."""
    (first, _), (second, second_signer) = _process(redis, "a"), _process(redis, "b")
    one, other = _key(), _key()
    await first.claim([one])
    await redis.set(other, await redis.get(one), px=60_000)

    assert await second.claim([other]) == [True]
    assert second_signer.rejected["squatted_claim"] == 1
