"""The CPU the system spends on a bench run: every server process's, from its `/metrics`
(`process_cpu_seconds_total`, so it works for a system the bench did not start, on any host),
Redis's, from `INFO cpu`, where the bench knows which Redis the system uses, and a broker's
(RabbitMQ's `beam.smp`), from /proc, where `--broker-pid` names it.

Divided by the purchases, it is what stays comparable from one noisy run, or machine, to the
next: a rate depends on what else the machine does, the CPU a purchase costs much less.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

CPU_METRIC = "process_cpu_seconds_total"
STEPS_METRIC = "sagashop_steps_total"
QUIET_FOR = 0.25
"""Seconds without a step taken anywhere after which the system counts as done with a run."""


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far: the server processes' summed (None if one did not tell),
    Redis's (None if the bench does not know the system's Redis), and the broker's (None
    unless `--broker-pid` names it)."""

    servers: float | None
    redis: float | None
    broker: float | None = None


@dataclass(frozen=True)
class CpuSpent:
    """CPU seconds spent between two samples."""

    servers: float | None
    redis: float | None
    broker: float | None = None

    @classmethod
    def between(cls, before: CpuSample, after: CpuSample) -> CpuSpent:
        return cls(
            _difference(before.servers, after.servers),
            _difference(before.redis, after.redis),
            _difference(before.broker, after.broker),
        )

    @property
    def total(self) -> float | None:
        """Servers and Redis together (the servers alone if Redis is not known); the broker is
        counted apart, so that the total compares across transports and with earlier runs."""
        return None if self.servers is None else self.servers + (self.redis or 0.0)


async def sample(
    http: aiohttp.ClientSession, urls: Sequence[str], redis_url: str | None
) -> CpuSample:
    servers = await asyncio.gather(*(_server_cpu(http, url) for url in urls))
    known = [seconds for seconds in servers if seconds is not None]
    return CpuSample(
        sum(known) if len(known) == len(servers) else None,
        None if redis_url is None else await _redis_cpu(redis_url),
    )


async def until_quiet(http: aiohttp.ClientSession, urls: Sequence[str], within: float) -> None:
    """Once no process took a step for `QUIET_FOR` seconds (or `within` is over): what a saga
    does after its client saw the final status (settling: spending, filling the bag, telling
    the user) is part of what a purchase costs."""
    loop = asyncio.get_running_loop()
    give_up_at, last = loop.time() + within, None
    while loop.time() < give_up_at:
        texts = await asyncio.gather(*(_metrics(http, url) for url in urls))
        taken = [metric_sum(text, STEPS_METRIC) for text in texts if text is not None]
        if taken == last:
            return
        last = taken
        await asyncio.sleep(QUIET_FOR)


async def _server_cpu(http: aiohttp.ClientSession, url: str) -> float | None:
    text = await _metrics(http, url)
    return None if text is None else metric_sum(text, CPU_METRIC)


async def _metrics(http: aiohttp.ClientSession, url: str) -> str | None:
    try:
        async with http.get(f"{url}/metrics") as response:
            return await response.text() if response.status == 200 else None
    except (aiohttp.ClientError, TimeoutError):
        return None


def metric_sum(metrics: str, name: str) -> float | None:
    """The sum of a metric's samples (over all its labels) in a Prometheus text exposition;
    None if it has none."""
    values = [
        float(line.rpartition(" ")[2])
        for line in metrics.splitlines()
        if line.startswith(name) and line[len(name) : len(name) + 1] in (" ", "{")
    ]
    return sum(values) if values else None


async def redis_cpu(url: str) -> float | None:
    """CPU seconds the Redis at `url` has used, from `INFO cpu`."""
    return await _redis_cpu(url)


async def _redis_cpu(url: str) -> float | None:
    redis = Redis.from_url(url)
    try:
        cpu = await redis.info("cpu")
    except (OSError, RedisError):
        return None
    finally:
        await redis.aclose()
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def _difference(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before
