"""The chaos run: many purchases under faults, ending with the audit.

    python run.py chaos                       2,000 purchases on Pub/Sub
    python run.py chaos --bus streams --purchases 5000
    python run.py chaos --layout spread --bad-link 1 --database-url postgres://…/empty
    python run.py chaos --layout spread --bad-link 1 --own-postgres 1 --bus streams
    python run.py chaos --layout spread --bad-link 1 --bus rabbitmq

It starts a Redis of its own (with `--bus rabbitmq`, a RabbitMQ node of its own too) and four
processes: a front door that runs no service and takes
the purchases, and three that share the six services (`--layout spread`: each service in a
process of its own, and two replicas each of the order and payment services). While the
purchases are placed it

- kills a random service process with SIGKILL and starts it again, several times;
- restarts Redis once;
- with `--bus rabbitmq`: restarts RabbitMQ once (stopped in order and started again on its
  data: durable queues and their messages kept, every connection lost);
- with `--own-postgres 1`: runs the services' database on a PostgreSQL server it starts itself
  (initdb) and restarts it once, with an immediate stop as after a crash (it replays its
  write-ahead log on start);
- has the bus lose a share of the events it publishes and send another share twice;
- has the payment mock decline a share of payments;
- with `--bad-link 1`: reaches Redis through a proxy that holds each chunk back up to 5 ms,
  drops a connection now and then and cuts every connection for 2 s once; RabbitMQ the same
  way (two connections dropped, cut for 2 s once); and, on PostgreSQL, cuts the database's
  link for 3 s once.

Then it waits for every order to end and runs the audit. The run passes when every order ended
within its deadline and the audit finds nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import secrets
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
from urllib.parse import SplitResult, urlsplit

import aiohttp

from sagashop.chaos.postgres import OwnPostgres
from sagashop.chaos.processes import Child
from sagashop.chaos.proxy import Proxy
from sagashop.chaos.rabbitmq import OwnRabbit
from sagashop.config import Settings
from sagashop.embedded_redis import EmbeddedRedis
from sagashop.http.bodies import MAX_LIST
from sagashop.names import ServiceName
from sagashop.transport.signing import BusKeys

log = logging.getLogger(__name__)

REPLICAS = {ServiceName.ORDER: 2, ServiceName.PAYMENT: 2}
"""Processes of these services in the spread layout (one of every other)."""
LAYOUTS = {
    "groups": (
        ("front", "none"),
        ("orders", "order,notification"),
        ("accounts", "user,payment"),
        ("goods", "inventory,item"),
    ),
    "spread": (
        ("front", "none"),
        *(
            (f"{name}-{n}", str(name))
            for name in ServiceName
            for n in range(1, 1 + REPLICAS.get(name, 1))
        ),
    ),
}
LINK_DELAY = 0.005
"""Seconds a chunk through the bad link may be held back, at most."""
REDIS_CUT = 2.0
BROKER_RESTART = 0.5
"""The share of purchases placed when the run's RabbitMQ restarts."""
BROKER_CUT = 2.0
DATABASE_CUT = 3.0
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
    layout: str = "groups"
    """How the services are dealt over processes (`LAYOUTS`)."""
    bad_link: int = 0
    """1: Redis (and RabbitMQ, and PostgreSQL) reached through a proxy that delays, drops and
    cuts."""
    own_postgres: int = 0
    """1: the services' database is a PostgreSQL the run starts itself (initdb, from pg_config's
    bindir or PATH; instead of --database-url), restarted (immediate stop, as after a crash)
    once mid-run."""


@dataclass
class Outcome:
    """What happened, in figures."""

    purchases: int = 0
    placing_seconds: float = 0.0
    kills: int = 0
    redis_restarts: int = 0
    database_restarts: int = 0
    database_down: float = 0.0
    """Seconds the restarted PostgreSQL took to accept connections again, from its stop."""
    broker_restarts: int = 0
    broker_down: float = 0.0
    """Seconds the restarted RabbitMQ took to accept AMQP again, from its stop."""
    dropped: int = 0
    duplicated: int = 0
    nudges: int = 0
    """Stalled sagas the order service re-drove (its last event published again)."""
    dead_letters: int = 0
    links_dropped: int = 0
    redis_cuts: int = 0
    broker_cuts: int = 0
    database_cuts: int = 0
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
            f"the database restarted {self.database_restarts}x (down {self.database_down:.1f}s), "
            f"the broker restarted {self.broker_restarts}x (down {self.broker_down:.1f}s), "
            f"{self.dropped} events dropped, {self.duplicated} duplicated",
            f"  link: {self.links_dropped} connections dropped, Redis cut {self.redis_cuts}x, "
            f"the broker cut {self.broker_cuts}x, the database cut {self.database_cuts}x",
            f"  orders: {dict(self.statuses)}; cancelled by {dict(self.reasons)}",
            f"  longest saga {self.longest_saga:.1f}s; {self.past_deadline} past the deadline",
            f"  re-driven: {self.nudges} nudges; {self.dead_letters} dead letters",
            f"  every order ended {self.recovery_seconds:.1f}s after the last fault",
            f"  processes exited cleanly: {self.clean_exits}",
            *(["  STOPPED: the run took longer than its time limit"] if self.timed_out else []),
            f"  audit: {'ok' if self.audit.get('ok') else 'FAILED'} {self.audit.get('counts')}",
            *(f"    {violation}" for violation in self.audit.get("violations", [])),
        ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for name, default in vars(Plan()).items():
        flag = "--" + name.replace("_", "-")
        choices = list(LAYOUTS) if name == "layout" else None
        parser.add_argument(
            flag, dest=name, type=type(default), default=default, choices=choices,
            help=f"default {default}",
        )  # fmt: skip


def command(settings: Settings, args: argparse.Namespace) -> int:
    plan = Plan(**{name: getattr(args, name) for name in vars(Plan())})
    with tempfile.TemporaryDirectory(prefix="sagashop-chaos-") as workdir:
        outcome = asyncio.run(run(plan, settings, Path(workdir)))
    print("\n".join(outcome.lines()))
    return 0 if outcome.ok else 1


async def run(plan: Plan, settings: Settings, workdir: Path) -> Outcome:
    """Start a Redis (and a PostgreSQL, and a RabbitMQ) and the processes in `workdir`, place the
    purchases under faults, wait for every order to end, audit, and stop everything."""
    postgres = OwnPostgres(workdir / "postgres.log") if plan.own_postgres else None
    rabbit = OwnRabbit(workdir / "rabbitmq.log") if settings.bus == "rabbitmq" else None
    redis = EmbeddedRedis(workdir / "redis")
    links = Links(plan, random.Random(plan.seed))
    children: list[Child] = []
    outcome = Outcome()
    try:
        if postgres is not None:
            postgres.start()
            settings = replace(settings, database_url=postgres.url)
        if rabbit is not None:
            await asyncio.to_thread(rabbit.start)  # it waits on an AMQP login of its own
            settings = replace(settings, amqp_url=rabbit.url)
        redis.start()
        settings = replace(
            settings,
            redis_url=redis.url,
            namespace=f"chaos-{uuid.uuid4().hex[:8]}",
            data_dir=workdir / "data",
            rate_limit="off",  # every purchase comes from this one address
        )
        settings = await links.start(settings, redis)
        children += [
            Child(name, services, settings, workdir / f"{name}.log")
            for name, services in LAYOUTS[plan.layout]
        ]
        for child in children:
            await child.start()
        async with aiohttp.ClientSession(children[0].url) as http, asyncio.timeout(plan.time_limit):
            await Run(plan, settings, http, children, redis, postgres, rabbit, links, outcome).go()
    except TimeoutError:
        outcome.timed_out = True
    finally:
        codes = await asyncio.gather(*(child.stop() for child in children if child.process))
        outcome.clean_exits = all(code == 0 for code in codes)
        await links.stop()
        redis.stop()
        if postgres is not None:
            postgres.stop()
        if rabbit is not None:
            rabbit.stop()
    return outcome


@dataclass
class Links:
    """With `--bad-link 1`, the proxies every process reaches Redis, RabbitMQ and PostgreSQL
    through."""

    plan: Plan
    rng: random.Random
    redis: Proxy | None = None
    broker: Proxy | None = None
    database: Proxy | None = None

    async def start(self, settings: Settings, redis: EmbeddedRedis) -> Settings:
        """The settings, their Redis, broker and database reached through the proxies."""
        if not self.plan.bad_link:
            return settings
        self.redis = Proxy(unix_path=str(redis.socket_path), rng=self.rng)
        self.redis.delay = LINK_DELAY
        await self.redis.restore()
        settings = replace(
            settings,
            redis_url=f"redis://127.0.0.1:{self.redis.port}/0",
            redis_insecure=True,  # the run's own Redis, on its own socket, behind a local proxy
            bus_keys=settings.bus_keys or BusKeys.parse(f"chaos:{secrets.token_urlsafe(24)}"),
        )
        if settings.bus == "rabbitmq" and settings.amqp_url:
            self.broker, amqp_url = await self._proxied(urlsplit(settings.amqp_url), 5672)
            self.broker.delay = LINK_DELAY
            settings = replace(settings, amqp_url=amqp_url)
        url = urlsplit(settings.database_url or "")
        if url.scheme.startswith("postgres") and url.hostname:
            self.database, database_url = await self._proxied(url, 5432)
            settings = replace(settings, database_url=database_url)
        return settings

    async def _proxied(self, url: SplitResult, default_port: int) -> tuple[Proxy, str]:
        """A proxy to the server of `url`, listening, and the URL that reaches it through it."""
        proxy = Proxy(url.hostname, url.port or default_port, rng=self.rng)
        await proxy.restore()
        at = url.netloc.rsplit("@", 1)[0] + "@" if "@" in url.netloc else ""
        return proxy, url._replace(netloc=f"{at}127.0.0.1:{proxy.port}").geturl()

    async def stop(self) -> None:
        for proxy in (self.redis, self.broker, self.database):
            if proxy is not None:
                await proxy.cut()

    def trouble(self) -> list[tuple[float, Callable[[], Awaitable[None]]]]:
        """When to do what to the links, by the share of purchases placed."""
        planned: list[tuple[float, Callable[[], Awaitable[None]]]] = []
        if self.redis is not None:
            planned += [(share, self.redis.drop_one) for share in (0.15, 0.35, 0.55, 0.85)]
            planned.append((0.6, partial(_cut_for, self.redis, REDIS_CUT)))
        if self.broker is not None:
            # not right after the broker's restart (at BROKER_RESTART), while no client may
            # have come back yet to have its connection dropped
            planned += [(share, self.broker.drop_one) for share in (0.2, 0.4)]
            planned.append((0.8, partial(_cut_for, self.broker, BROKER_CUT)))
        if self.database is not None:
            planned.append((0.75, partial(_cut_for, self.database, DATABASE_CUT)))
        return planned

    def count(self, outcome: Outcome) -> None:
        """What was done to the links (before they are stopped)."""
        if self.redis is not None:
            outcome.links_dropped, outcome.redis_cuts = self.redis.dropped, self.redis.cuts
        if self.broker is not None:
            outcome.links_dropped += self.broker.dropped
            outcome.broker_cuts = self.broker.cuts
        if self.database is not None:
            outcome.database_cuts = self.database.cuts


async def _cut_for(proxy: Proxy, seconds: float) -> None:
    log.warning("chaos: cutting a link for %.0fs", seconds)
    await proxy.cut()
    await asyncio.sleep(seconds)
    await proxy.restore()


@dataclass
class Run:
    plan: Plan
    settings: Settings
    http: aiohttp.ClientSession
    children: list[Child]
    redis: EmbeddedRedis
    postgres: OwnPostgres | None
    rabbit: OwnRabbit | None
    links: Links
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
        self.links.count(self.outcome)
        await self._count_faults(self.children[1:])
        quiet_since = max(self.last_fault, time.monotonic())
        await self._wait_until_everything_ended()
        self.outcome.recovery_seconds = time.monotonic() - quiet_since
        await self._tally()
        await self._count_dead_letters()
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
        """Kill processes at even steps of the run, restart Redis a little before halfway,
        RabbitMQ (the run's own) at halfway and PostgreSQL (the run's own) at 70%."""
        steps = [k / (self.plan.kills + 1) for k in range(1, self.plan.kills + 1)]
        trouble: list[tuple[float, Callable[[], Awaitable[None]]]] = [
            (step, self._kill_one) for step in steps
        ]
        trouble.append((0.45, self._restart_redis))
        if self.rabbit is not None:
            trouble.append((BROKER_RESTART, partial(self._restart_broker, self.rabbit)))
        if self.postgres is not None:
            trouble.append((0.7, partial(self._restart_postgres, self.postgres)))
        trouble += self.links.trouble()
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

    async def _restart_broker(self, rabbit: OwnRabbit) -> None:
        log.warning("chaos: restarting RabbitMQ (stopped in order, and started again)")
        self.outcome.broker_down = await asyncio.to_thread(rabbit.restart)
        self.outcome.broker_restarts += 1

    async def _restart_postgres(self, postgres: OwnPostgres) -> None:
        log.warning("chaos: restarting PostgreSQL (an immediate stop, as after a crash)")
        self.outcome.database_down = await asyncio.to_thread(postgres.restart)
        self.outcome.database_restarts += 1

    async def _count_faults(self, children: list[Child]) -> None:
        """Add up what each process's bus dropped and duplicated, and the sagas it nudged
        (before it is killed: its counts die with it)."""
        for child in children:
            try:
                async with self.http.get(f"{child.url}/health") as response:
                    faults = (await response.json())["faults"]
                async with self.http.get(f"{child.url}/metrics") as response:
                    scraped = await response.text()
            except (aiohttp.ClientError, KeyError):
                continue
            self.outcome.dropped += faults["dropped"]
            self.outcome.duplicated += faults["duplicated"]
            self.outcome.nudges += _nudges(scraped)

    async def _count_dead_letters(self) -> None:
        self.outcome.dead_letters = len(await self._every("/dead-letters", "deadLetters"))

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
            for order in await self._every(f"/user/{user}/orders", "orders"):
                self.outcome.statuses[order["status"]] += 1
                if order["failureReason"]:
                    self.outcome.reasons[order["failureReason"].split(":")[0]] += 1
                lasted = _seconds_between(order["createdAt"], order["updatedAt"])
                self.outcome.longest_saga = max(self.outcome.longest_saga, lasted)
                self.outcome.past_deadline += lasted > deadline

    async def _every(self, path: str, key: str) -> list[dict[str, Any]]:
        """Every entry of a paged list (`key` in each page), following its cursors."""
        found: list[dict[str, Any]] = []
        after = ""
        while True:
            page = await self._get(f"{path}?limit={MAX_LIST}{after}")
            found += page[key]
            if not page["next"]:
                return found
            after = f"&cursor={page['next']}"

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


def _nudges(scraped: str) -> int:
    """`sagashop_nudges_total`, summed over its labels, from a `/metrics` page."""
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in scraped.splitlines()
        if line.startswith("sagashop_nudges_total{")
    )


def _seconds_between(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
