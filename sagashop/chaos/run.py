"""The chaos run: many purchases under faults, ending with the audit.

    python run.py chaos                       2,000 purchases on Pub/Sub
    python run.py chaos --bus streams --purchases 5000

It starts a Redis of its own and four processes: a front door that runs no service and takes
the purchases, and three that share the six services. While the purchases are placed it

- kills a random service process with SIGKILL and starts it again, several times;
- restarts Redis once;
- has the bus lose a share of the events it publishes and send another share twice;
- has the payment mock decline a share of payments.

Then it waits for every order to end and runs the audit. The run passes when every order ended
within its deadline and the audit finds nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from sagashop.chaos.processes import Child
from sagashop.config import Settings
from sagashop.embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)

LAYOUT = (
    ("front", "none"),
    ("orders", "order,notification"),
    ("accounts", "user,payment"),
    ("goods", "inventory,item"),
)
DEFAULTS = {
    "fault_drop": "0.02",
    "fault_duplicate": "0.05",
    "payment_failure_rate": "0.2",
    "saga_deadline": "20",
    "nudge_after": "2",
    "sweep_every": "0.5",
}
"""The chaos run's faults and a shorter deadline; flags and environment still win."""


@dataclass(frozen=True)
class Plan:
    purchases: int = 2_000
    users: int = 100
    items: int = 10
    concurrency: int = 32
    kills: int = 4
    seed: int = 1
    time_limit: int = 170
    """Seconds the whole run may take; past that it stops and fails."""


@dataclass
class Outcome:
    """What happened, in figures."""

    purchases: int = 0
    placing_seconds: float = 0.0
    kills: int = 0
    redis_restarts: int = 0
    dropped: int = 0
    duplicated: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    longest_saga: float = 0.0
    past_deadline: int = 0
    recovery_seconds: float = 0.0
    clean_exits: bool = True
    timed_out: bool = False
    audit: dict[str, Any] = field(default_factory=dict)
    """What `GET /audit` answered at the end."""

    @property
    def ok(self) -> bool:
        ended = (
            sum(self.statuses.values()) == self.statuses["COMPLETED"] + self.statuses["CANCELLED"]
        )
        audited = bool(self.audit.get("ok"))
        finished = self.clean_exits and not self.timed_out
        return ended and not self.past_deadline and audited and finished

    def lines(self) -> list[str]:
        rate = self.purchases / self.placing_seconds if self.placing_seconds else 0.0
        return [
            f"chaos run {'passed' if self.ok else 'FAILED'}",
            f"  purchases: {self.purchases} in {self.placing_seconds:.1f}s ({rate:.0f}/s)",
            f"  faults: {self.kills} processes killed, Redis restarted {self.redis_restarts}x, "
            f"{self.dropped} events dropped, {self.duplicated} duplicated",
            f"  orders: {dict(self.statuses)}; cancelled by {dict(self.reasons)}",
            f"  longest saga {self.longest_saga:.1f}s; {self.past_deadline} past the deadline",
            f"  every order ended {self.recovery_seconds:.1f}s after the last fault",
            f"  processes exited cleanly: {self.clean_exits}",
            *(["  STOPPED: the run took longer than its time limit"] if self.timed_out else []),
            f"  audit: {'ok' if self.audit.get('ok') else 'FAILED'} {self.audit.get('counts')}",
            *(f"    {violation}" for violation in self.audit.get("violations", [])),
        ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for name, default in vars(Plan()).items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, dest=name, type=int, default=default, help=f"default {default}")


def command(settings: Settings, args: argparse.Namespace) -> int:
    plan = Plan(**{name: getattr(args, name) for name in vars(Plan())})
    with tempfile.TemporaryDirectory(prefix="sagashop-chaos-") as workdir:
        outcome = asyncio.run(run(plan, settings, Path(workdir)))
    print("\n".join(outcome.lines()))
    return 0 if outcome.ok else 1


async def run(plan: Plan, settings: Settings, workdir: Path) -> Outcome:
    """Start a Redis and the processes in `workdir`, place the purchases under faults, wait
    for every order to end, audit, and stop everything."""
    redis = EmbeddedRedis(workdir / "redis")
    redis.start()
    settings = replace(
        settings,
        redis_url=redis.url,
        namespace=f"chaos-{uuid.uuid4().hex[:8]}",
        data_dir=workdir / "data",
        rate_limit="off",  # every purchase comes from this one address
    )
    children = [
        Child(name, services, settings, workdir / f"{name}.log") for name, services in LAYOUT
    ]
    outcome = Outcome()
    try:
        for child in children:
            await child.start()
        async with aiohttp.ClientSession(children[0].url) as http, asyncio.timeout(plan.time_limit):
            await Run(plan, settings, http, children, redis, outcome).go()
    except TimeoutError:
        outcome.timed_out = True
    finally:
        codes = await asyncio.gather(*(child.stop() for child in children if child.process))
        outcome.clean_exits = all(code == 0 for code in codes)
        redis.stop()
    return outcome


@dataclass
class Run:
    plan: Plan
    settings: Settings
    http: aiohttp.ClientSession
    children: list[Child]
    redis: EmbeddedRedis
    outcome: Outcome
    rng: random.Random = field(init=False)
    users: list[str] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    placed: int = 0
    victims: list[Child] = field(default_factory=list)
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    last_fault: float = 0.0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.plan.seed)

    async def go(self) -> None:
        await self._stock_the_shop()
        started = time.monotonic()
        monkey = asyncio.create_task(self._make_trouble())
        await self._place_all()
        self.outcome.placing_seconds = time.monotonic() - started
        await monkey
        await self._count_faults(self.children[1:])
        quiet_since = max(self.last_fault, time.monotonic())
        await self._wait_until_everything_ended()
        self.outcome.recovery_seconds = time.monotonic() - quiet_since
        await self._tally()
        self.outcome.audit = await self._get("/audit")

    async def _stock_the_shop(self) -> None:
        for _ in range(self.plan.users):
            body = {"username": "chaos", "balance": self.rng.randrange(50_000, 200_001, 1_000)}
            self.users.append((await self._post("/users", body))["id"])
        for n in range(self.plan.items):
            body = {
                "name": f"chaos item {n}",
                "price": self.rng.randrange(500, 5_001, 500),
                "stock": self.rng.randrange(100, 401),
            }
            self.items.append((await self._post("/items", body))["id"])

    async def _place_all(self) -> None:
        gate = asyncio.Semaphore(self.plan.concurrency)
        orders = [
            {
                "userId": self.rng.choice(self.users),
                "itemId": self.rng.choice(self.items),
                "quantity": self.rng.randint(1, 3),
            }
            for _ in range(self.plan.purchases)
        ]

        async def place(order: dict[str, Any]) -> None:
            async with gate:
                await self._post("/orders", order, {"Idempotency-Key": str(uuid.uuid4())})
            async with self.progress:
                self.placed += 1
                self.progress.notify_all()

        await asyncio.gather(*(place(order) for order in orders))
        self.outcome.purchases = self.placed

    async def _make_trouble(self) -> None:
        """Kill processes at even steps of the run, and restart Redis a little before halfway."""
        steps = [k / (self.plan.kills + 1) for k in range(1, self.plan.kills + 1)]
        trouble: list[tuple[float, Callable[[], Awaitable[None]]]] = [
            (step, self._kill_one) for step in steps
        ]
        trouble.append((0.45, self._restart_redis))
        for share, act in sorted(trouble, key=lambda pair: pair[0]):
            async with self.progress:
                await self.progress.wait_for(partial(self._placed_at_least, share))
            await act()
            self.last_fault = time.monotonic()

    def _placed_at_least(self, share: float) -> bool:
        return self.placed >= share * self.plan.purchases

    async def _kill_one(self) -> None:
        """Kill the service processes in a shuffled turn, so that each of them dies."""
        if not self.victims:
            self.victims = self.rng.sample(self.children[1:], len(self.children) - 1)
        victim = self.victims.pop()
        await self._count_faults([victim])
        log.warning("chaos: SIGKILL %s (%s)", victim.name, victim.services)
        victim.kill()
        await victim.restart()
        self.outcome.kills += 1

    async def _restart_redis(self) -> None:
        log.warning("chaos: restarting Redis")
        await asyncio.to_thread(self.redis.restart)
        self.outcome.redis_restarts += 1

    async def _count_faults(self, children: list[Child]) -> None:
        """Add up what each process's bus dropped and duplicated (before it is killed)."""
        for child in children:
            try:
                async with self.http.get(f"{child.url}/health") as response:
                    faults = (await response.json())["faults"]
            except (aiohttp.ClientError, KeyError):
                continue
            self.outcome.dropped += faults["dropped"]
            self.outcome.duplicated += faults["duplicated"]

    async def _wait_until_everything_ended(self) -> None:
        """Until the audit sees no order in flight; bounded by the deadline and its undoing."""
        limit = time.monotonic() + self.settings.saga_deadline * 3 + 60
        while time.monotonic() < limit:
            try:
                counts = (await self._get("/audit"))["counts"]
            except aiohttp.ClientError:
                counts = {"in flight": -1}
            if counts["in flight"] == 0:
                return
            await asyncio.sleep(1.0)
        log.error("chaos: orders still in flight after %.0fs", limit)

    async def _tally(self) -> None:
        deadline = self.settings.saga_deadline + 2 * self.settings.sweep_every + 1.0
        for user in self.users:
            for order in (await self._get(f"/user/{user}/orders"))["orders"]:
                self.outcome.statuses[order["status"]] += 1
                if order["failureReason"]:
                    self.outcome.reasons[order["failureReason"].split(":")[0]] += 1
                lasted = _seconds_between(order["createdAt"], order["updatedAt"])
                self.outcome.longest_saga = max(self.outcome.longest_saga, lasted)
                self.outcome.past_deadline += lasted > deadline

    async def _post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Any:
        return await self._call("POST", path, json=body, headers=headers)

    async def _get(self, path: str) -> Any:
        return await self._call("GET", path)

    async def _call(self, method: str, path: str, **options: Any) -> Any:
        """Ask until the system answers: a killed service answers 503 for a moment."""
        while True:
            try:
                async with self.http.request(method, path, **options) as response:
                    if response.status < 500:
                        response.raise_for_status()
                        return await response.json()
            except (aiohttp.ClientConnectionError, TimeoutError):
                pass
            await asyncio.sleep(0.2)


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
