"""Per-caller rate limits: past its limit a caller gets 429 with `Retry-After`, and the others
go on as before (OWASP API4, unrestricted resource consumption: 930 users a second were made).

The counts live in this process's memory, or in the node's Redis under the namespace's
`ratelimit` keys when several processes serve the API (`--rate-limit-store redis`), so that a
caller cannot multiply its limit by the number of processes behind a balancer. A moving window
(the `limits` library's), so that a burst straddling two windows is not let through twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from sagashop.config import DEFAULT_RATE_LIMIT, Settings, rate_limit_for
from sagashop.http.auth import AUTH
from sagashop.http.context import NODE
from sagashop.http.errors import TooManyRequests
from sagashop.tokens import InvalidToken, verify

log = logging.getLogger(__name__)

PROBES = frozenset({"/healthz", "/readyz", "/health", "/metrics"})
"""What an orchestrator or a scraper asks on a schedule of its own (liveness, readiness,
health and metrics): held to `PROBE_LIMIT` per address instead of the callers'
limit, so a caller past its own is still probed, and a flood of probes (each `/readyz` pings
Redis, every database and every actor) is refused without starving another address's."""
PROBE_LIMIT = "20/second"
"""Per address: a kubelet or a Prometheus asks every few seconds."""


def caller_of(request: web.Request) -> str:
    """Who is asking, as the rate limit counts callers: the subject of a valid token (so that
    players behind one address, a NAT or an office, do not share a limit, and one player
    cannot dodge it by changing address), else the client's address.

    The limit runs before the auth gate (a flood of bad tokens is limited too), so the token
    is checked here as well: only a verified subject counts, never one a caller made up."""
    auth = request.app.get(AUTH)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if auth is not None and scheme.lower() == "bearer" and token.strip():
        with suppress(InvalidToken):
            claims = verify(auth.keys, token.strip(), auth.ttl)
            return f"{claims.role}:{claims.subject}"
    return f"address:{_address(request)}"


def _address(request: web.Request) -> str:
    return request.remote or "unknown"


@dataclass(frozen=True)
class Limiter:
    """The limits every caller is held to, and where their counts live."""

    strategy: MovingWindowRateLimiter
    items: Sequence[RateLimitItem]
    probes: Sequence[RateLimitItem] = tuple(parse_many(PROBE_LIMIT))

    async def wait_for(self, caller: str, items: Sequence[RateLimitItem]) -> int | None:
        """None if the caller may go on (the request is counted against `items`), else the
        whole seconds until it may: what `Retry-After` says."""
        for item in items:
            if not await self.strategy.hit(item, caller):
                stats = await self.strategy.get_window_stats(item, caller)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None


LIMITER = web.AppKey("limiter", Limiter)
T = TypeVar("T")
AUDIT_EVERY = 2.0
"""Seconds at least between two audits: the audit reads every row of every store, so callers
asking in a loop, or many at once, would load them all."""


@dataclass
class Paced(Generic[T]):
    """Runs `compute` for its callers one run at a time, a run starting `gap` seconds at least
    after the one before; the callers who asked before a run started share it. So the stores
    see one audit per `gap` however many ask, and yet no caller gets a stale answer (a cache
    would give one: a report from before the change a caller just made): each answer comes
    from a run that started after its caller asked. A failure is shared by that run's callers
    only."""

    gap: float
    _next: asyncio.Future[T] | None = field(default=None, init=False)
    _one_at_a_time: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _started: float = field(default=-math.inf, init=False)

    async def get(self, compute: Callable[[], Awaitable[T]]) -> T:
        if self._next is None:
            self._next = asyncio.ensure_future(self._run(compute))
        return await asyncio.shield(self._next)

    async def _run(self, compute: Callable[[], Awaitable[T]]) -> T:
        async with self._one_at_a_time:
            await asyncio.sleep(max(0.0, self._started + self.gap - time.monotonic()))
            self._next = None  # who asks from now on needs a run that starts after them
            self._started = time.monotonic()
            return await compute()


AUDIT_REPORTS = web.AppKey("audit_reports", Paced[Any])


_WHY_DEFAULT = {
    "off": " (auth is off on a loopback address: --rate-limit sets one)",
    DEFAULT_RATE_LIMIT: " per caller (the default with auth on: --rate-limit to change it)",
}


def add_limits(app: web.Application, settings: Settings) -> None:
    """Hold callers to `settings.rate_limit` (nothing, if it is off), once the node runs, and
    run the audit once per `AUDIT_EVERY` seconds at most."""
    app[AUDIT_REPORTS] = Paced(AUDIT_EVERY)
    limit = rate_limit_for(settings)

    async def limiter(app: web.Application) -> AsyncIterator[None]:
        """Once the node runs: said then, not before a start that fails."""
        log.info("rate limit: %s%s", limit, "" if settings.rate_limit else _WHY_DEFAULT[limit])
        if limit != "off":
            storage = _storage(app, settings)
            app[LIMITER] = Limiter(MovingWindowRateLimiter(storage), parse_many(limit))
        yield

    app.cleanup_ctx.append(limiter)


def _storage(app: web.Application, settings: Settings) -> Storage:
    if settings.rate_limit_store == "memory":
        return MemoryStorage()
    node = app[NODE]
    # The node's own connections, so its URL, credentials and TLS hold here too (the library
    # types its options narrower than it takes them).
    pool: dict[str, Any] = {"connection_pool": node.redis.connection_pool}
    return RedisStorage(
        "async+redis://", implementation="redispy", key_prefix=node.channels.rate_limits(), **pool
    )


@web.middleware
async def rate_limited(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a caller past its limit with 429 and `Retry-After`, before anything is done."""
    limiter = request.app.get(LIMITER)
    if limiter is not None:
        if request.path in PROBES:
            wait = await limiter.wait_for(f"probe:{_address(request)}", limiter.probes)
        else:
            wait = await limiter.wait_for(caller_of(request), limiter.items)
        if wait is not None:
            raise TooManyRequests(wait)
    return await handler(request)
