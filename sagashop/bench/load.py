"""The client side of a bench run: purchases placed through the front doors, each timed from its
`POST /orders` until a read answers with its final status.

The reads wait on the server (`GET /orders/{id}/status?wait=SECONDS`), which answers as soon as
the order has ended, so a latency is not rounded up to a polling interval. A server that ignores
`wait` answers at once; then the reads are spaced by a short pause, and one that has no `/status`
is read through `GET /orders/{id}` instead, so the bench runs against older servers too.
`--read order` reads `GET /orders/{id}` from the start, as the original project's clients do
(with `--poll-every 0.25`, exactly as they do).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from sagashop.errors import SagashopError

FINAL = ("COMPLETED", "CANCELLED")
LOST = "LOST"
"""No final status within the bench's deadline for one order."""
REFUSED = "REFUSED"
"""`POST /orders` did not answer 201: no purchase started."""
LONGEST_WAIT = 60.0
"""The most a front door waits in one read (`?wait=` takes 0 to 60 seconds)."""
POLL_EVERY = 0.05
"""Between reads of a server that answered before the wait was over (one that ignores it)."""
SLACK = 15.0
"""Seconds a front door may take to answer beyond any wait asked of it (it gives up on a service
that does not answer after 10)."""
AUDIT_EVERY = 1.0
"""Seconds between audits while orders are still in flight after the last one ended."""


class BenchError(SagashopError):
    """The bench could not run (the shop could not be stocked, say): no figures to show."""


@dataclass(frozen=True)
class Outcome:
    """How one purchase ended, as the bench saw it."""

    status: str
    """COMPLETED, CANCELLED, LOST or REFUSED."""
    reason: str | None = None
    seconds: float | None = None
    """From sending the POST to reading the final status."""
    errors: tuple[str, ...] = ()
    """HTTP errors on the way (a refusal, a read that failed)."""
    refused_with: tuple[int, ...] = ()
    """The status of each answer that refused a request on the way (429, 503, …)."""


class Refused(SagashopError):
    """The server answered a request with an error status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"answered {status}: {text[:300]}")
        self.status = status


async def expect(
    http: aiohttp.ClientSession, method: str, url: str, status: int = 200, **options: Any
) -> Any:
    """The JSON answer of a call that must succeed; BenchError naming the call otherwise."""
    try:
        async with http.request(method, url, **options) as response:
            if response.status == status:
                return await response.json()
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError) as error:
        raise BenchError(f"{method} {url}: {error!r}") from None
    raise BenchError(f"{method} {url} answered {response.status}: {text[:300]}")


async def create_all(
    http: aiohttp.ClientSession,
    bases: Sequence[str],
    path: str,
    bodies: Sequence[dict[str, Any]],
    concurrency: int,
    done: Callable[[], None],
) -> list[str]:
    """POST each body (spread over the front doors, `concurrency` at a time); the ids created."""
    gate = asyncio.Semaphore(concurrency)

    async def create(n: int, body: dict[str, Any]) -> str:
        async with gate:
            created = await expect(http, "POST", f"{bases[n % len(bases)]}{path}", 201, json=body)
        done()
        return str(created["id"])

    return list(await asyncio.gather(*(create(n, body) for n, body in enumerate(bodies))))


@dataclass
class Buyer:
    """Places one purchase and waits for its end; shared by every worker of a run."""

    http: aiohttp.ClientSession
    deadline: float
    """Seconds after its POST by which an order that has not ended counts as lost."""
    poll_every: float | None = None
    """Read the order's status every so many seconds instead of waiting on the server: a
    polling load. None: wait with `?wait=`, and if the server answers before the wait is over
    (an older one, which ignores it), read again every `POLL_EVERY` seconds."""
    whole_order: bool = False
    """Read `GET /orders/{id}`, not `/status`: asked for (`--read order`), or the server has no
    `/orders/{id}/status` (an older one)."""

    async def buy(self, base: str, body: dict[str, Any]) -> Outcome:
        started = time.perf_counter()
        try:
            timeout = aiohttp.ClientTimeout(total=SLACK)
            async with self.http.post(f"{base}/orders", json=body, timeout=timeout) as response:
                if response.status != 201:
                    text = (await response.text())[:300]
                    error = f"POST /orders {response.status}: {text}"
                    return Outcome(REFUSED, errors=(error,), refused_with=(response.status,))
                order_id = (await response.json())["id"]
        except (aiohttp.ClientError, TimeoutError) as error:
            return Outcome(REFUSED, errors=(f"POST /orders: {error!r}",))
        return await self._until_final(base, order_id, started)

    async def _until_final(self, base: str, order_id: str, started: float) -> Outcome:
        errors: list[str] = []
        refused_with: list[int] = []
        end = started + self.deadline
        while (remaining := end - time.perf_counter()) > 0:
            wait = 0.0 if self.poll_every else min(remaining, LONGEST_WAIT)
            asked = time.perf_counter()
            try:
                answer = await self._read(base, order_id, wait)
            except Refused as refusal:
                errors.append(f"GET /orders/{order_id}: {refusal}")
                refused_with.append(refusal.status)
                answer = None
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                errors.append(f"GET /orders/{order_id}: {error!r}")
                answer = None
            if answer is not None and answer["status"] in FINAL:
                seconds = time.perf_counter() - started
                status, reason = answer["status"], answer["failureReason"]
                return Outcome(status, reason, seconds, tuple(errors), tuple(refused_with))
            if self.poll_every or time.perf_counter() < asked + wait:
                await asyncio.sleep(min(self.poll_every or POLL_EVERY, remaining))
        return Outcome(LOST, errors=tuple(errors), refused_with=tuple(refused_with))

    async def _read(self, base: str, order_id: str, wait: float) -> dict[str, Any] | None:
        """The order's status after waiting up to `wait` for it to end; None if this server
        turned out to have no status endpoint (read again, the whole order)."""
        path = f"/orders/{order_id}" if self.whole_order else f"/orders/{order_id}/status"
        timeout = aiohttp.ClientTimeout(total=wait + SLACK)
        params = {"wait": f"{wait:.3f}"}
        async with self.http.get(f"{base}{path}", params=params, timeout=timeout) as response:
            body = await response.json(content_type=None)
            if response.status == 200:
                return dict(body)
            if response.status == 404 and not self.whole_order and _no_such_endpoint(body):
                self.whole_order = True
                return None
            raise Refused(response.status, str(body))


async def _audit(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """The audit, asked again after the server's `Retry-After` while it answers 429 (a server
    with a rate limit counts the bench's own requests)."""
    while True:
        async with http.get(f"{base}/audit", timeout=aiohttp.ClientTimeout(300)) as response:
            if response.status != 429:
                if response.status != 200:
                    raise BenchError(
                        f"GET /audit answered {response.status}: {await response.text()}"
                    )
                return dict(await response.json())
            await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


def _no_such_endpoint(body: Any) -> bool:
    """The front door's 404 for a path it does not route (not for an unknown order)."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return str(error.get("message", "")).startswith("no such endpoint")


async def drive(
    buyer: Buyer,
    bases: Sequence[str],
    orders: Sequence[dict[str, Any]],
    concurrency: int,
    done: Callable[[Outcome], None],
) -> tuple[list[Outcome], float]:
    """Place every order, `concurrency` purchases in flight at a time, the workers spread over
    the front doors; the outcomes (in the order they ended) and the seconds it all took."""
    waiting = iter(orders)
    outcomes: list[Outcome] = []

    async def worker(base: str) -> None:
        for body in waiting:  # shared: each worker takes the next order when it is free
            outcome = await buyer.buy(base, body)
            outcomes.append(outcome)
            done(outcome)

    started = time.perf_counter()
    await asyncio.gather(*(worker(bases[n % len(bases)]) for n in range(concurrency)))
    return outcomes, time.perf_counter() - started


async def settled_audit(
    http: aiohttp.ClientSession, base: str, within: float
) -> tuple[dict[str, Any], float]:
    """The audit once no order is in flight (every saga settled, and ended longer ago than the
    audit's settling window), so that all its checks run, money across services included; and
    the seconds that audit took. After `within` seconds, the audit as it stands then."""
    end = time.perf_counter() + within
    while True:
        started = time.perf_counter()
        audit = await _audit(http, base)
        seconds = time.perf_counter() - started
        if not audit["counts"]["in flight"] or time.perf_counter() > end:
            return audit, seconds
        await asyncio.sleep(AUDIT_EVERY)
