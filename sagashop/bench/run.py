"""The bench: purchases through the HTTP front door, then the figures.

    python run.py bench                                  2,000 purchases, spread out (uniform)
    python run.py bench --scenario flash-sale            5,000 orders from 1,000 users, stock 100
    python run.py bench --processes auto --database-url postgres://…/empty
    python run.py bench --url http://127.0.0.1:3000      a system that is already running

Without --url it starts the system itself, in processes of its own (an embedded Redis unless
--redis-url is given; SQLite files in a temporary directory unless --database-url names a
database, which must be empty). It shows a progress bar, then a table (or, with --json, one JSON
object): purchases/s, latency from POST to final status, statuses, the audit, peak RSS and the
longest event-loop lag. It exits 1 if an invariant was broken (the audit, an order lost or
refused, an HTTP error, a flash sale not selling exactly its stock), saying which; never for
speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sagashop.bench import cpu
from sagashop.bench.figures import Figures, vitals_of
from sagashop.bench.load import (
    POLL_EVERY,
    BenchError,
    Buyer,
    create_all,
    drive,
    expect,
    settled_audit,
)
from sagashop.bench.scenarios import CONCURRENCY, SCENARIOS, Plan, make_plan
from sagashop.bench.system import System, cpu_seconds, started_system
from sagashop.config import Settings

DEFAULTS = {"log_level": "WARNING", "payment_failure_rate": "0"}
"""The system the bench starts logs only trouble, and its payment mock declines nothing unless
asked to (a flash sale needs that); flags and environment still win."""
ORDER_DEADLINE = 60.0
EMPTY = ("users", "items", "orders")


class Read(StrEnum):
    """What each client reads until its order ends (`--read`)."""

    STATUS = "status"
    ORDER = "order"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    bench = parser.add_argument_group("bench")
    bench.add_argument(
        "--url",
        action="append",
        default=[],
        help="front door of a running system (again for another process of it); "
        "none: start a system",
    )
    bench.add_argument("--scenario", choices=SCENARIOS, default="uniform", help="default uniform")
    bench.add_argument("--purchases", type=int, help="uniform 2000, flash-sale 5000")
    bench.add_argument(
        "--concurrency", type=int, default=CONCURRENCY, help=f"purchases in flight ({CONCURRENCY})"
    )
    bench.add_argument(
        "--users", type=int, help="uniform: enough that no bag fills; flash-sale 1000"
    )
    bench.add_argument("--items", type=int, help="uniform 10; flash-sale: 1")
    bench.add_argument("--stock", type=int, help="of each item: uniform ample; flash-sale 100")
    bench.add_argument("--seed", type=int, default=1, help="of the bench's own choices (1)")
    bench.add_argument(
        "--order-deadline",
        type=float,
        default=ORDER_DEADLINE,
        help=f"seconds after which an order with no final status is lost ({ORDER_DEADLINE:g})",
    )
    bench.add_argument(
        "--poll-every",
        type=float,
        help="read each order's status every so many seconds instead of waiting on the server "
        f"for its end (a polling load; an older server, which ignores ?wait=, is read every "
        f"{POLL_EVERY:g})",
    )
    bench.add_argument(
        "--read",
        choices=list(Read),
        default=Read.STATUS,
        help="what each client reads until its order ends: status (GET /orders/{id}/status, "
        "the default) or order (GET /orders/{id}, as the original project's clients do)",
    )
    bench.add_argument(
        "--broker-pid",
        type=int,
        help="a local process whose CPU (from /proc) is the broker's, counted apart from the "
        "server's: RabbitMQ's beam.smp with --bus rabbitmq",
    )
    bench.add_argument("--json", action="store_true", help="one JSON object, no progress bar")


def command(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 if the run kept its invariants, 1 if not (or it could not run), 2 for bad flags."""
    try:
        plan = make_plan(
            args.scenario,
            args.purchases,
            args.users,
            args.items,
            args.stock,
            args.concurrency,
            args.seed,
        )
        _check_system_flags(plan, settings, args)
    except ValueError as error:
        print(f"run.py bench: {error}", file=sys.stderr)
        return 2
    progress = _progress_bar(disable=args.json)
    try:
        with progress:
            figures = asyncio.run(
                bench(
                    plan,
                    settings,
                    args.url,
                    args.order_deadline,
                    progress,
                    Clients(args.poll_every, args.read == Read.ORDER),
                    args.broker_pid,
                )
            )
    except BenchError as error:
        print(f"bench could not run: {error}", file=sys.stderr)
        return 1
    failures = figures.failures()
    if args.json:
        print(json.dumps(figures.to_dict()))
    else:
        console = Console()
        console.print(figures.table())
        for failure in failures:
            console.print(f"[bold red]FAILED[/]: {failure}", highlight=False)
    return 1 if failures else 0


def _check_system_flags(plan: Plan, settings: Settings, args: argparse.Namespace) -> None:
    if args.order_deadline <= 0:
        raise ValueError("--order-deadline must be a positive number of seconds")
    if args.poll_every is not None and args.poll_every <= 0:
        raise ValueError("--poll-every must be a positive number of seconds")
    if args.broker_pid is not None and cpu_seconds(args.broker_pid) is None:
        raise ValueError(f"--broker-pid {args.broker_pid}: no such process to read the CPU of")
    if plan.scenario == "flash-sale" and not args.url and settings.payment_failure_rate:
        raise ValueError(
            "a flash sale sells exactly its stock only if no payment is declined: "
            "--payment-failure-rate 0"
        )


def _progress_bar(disable: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=disable,
    )


@dataclass(frozen=True)
class Clients:
    """How the bench's clients follow their orders to the end."""

    poll_every: float | None = None
    """Read every so many seconds; None: wait on the server (`?wait=`)."""
    read_order: bool = False
    """Read `GET /orders/{id}` rather than `/orders/{id}/status`."""


async def bench(
    plan: Plan,
    settings: Settings,
    urls: Sequence[str],
    order_deadline: float,
    progress: Progress,
    clients: Clients = Clients(),
    broker_pid: int | None = None,
) -> Figures:
    """Against the running system at `urls` (its Redis's CPU counted if `--redis-url` names
    it), or one started for the run and stopped after."""
    if urls:
        bases = [url.rstrip("/") for url in urls]
        return await measure(
            plan, bases, order_deadline, progress, clients, settings.redis_url, None, broker_pid
        )
    with tempfile.TemporaryDirectory(prefix="sagashop-bench-") as workdir:
        async with started_system(settings, Path(workdir)) as system:
            return await measure(
                plan,
                system.urls,
                order_deadline,
                progress,
                clients,
                system.redis_url,
                system,
                broker_pid,
            )


async def measure(
    plan: Plan,
    urls: Sequence[str],
    order_deadline: float,
    progress: Progress,
    clients: Clients = Clients(),
    redis_url: str | None = None,
    system: System | None = None,
    broker_pid: int | None = None,
) -> Figures:
    """Stock the shop, place the purchases, then audit and read each process's vitals. The CPU
    is counted from the first purchase until every saga has settled, before the audit."""
    rng = random.Random(plan.seed)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        if system is not None:
            await require_empty(http, urls[0])
        orders = await _stock_the_shop(http, urls, plan, rng, progress)
        placing = progress.add_task("purchases", total=plan.purchases)
        cpu_before = await _cpu(http, urls, redis_url, system, broker_pid)
        outcomes, seconds = await drive(
            Buyer(http, order_deadline, clients.poll_every, clients.read_order),
            urls,
            orders,
            plan.concurrency,
            lambda _outcome: progress.advance(placing),
        )
        settling = progress.add_task("waiting for every saga to settle", total=None)
        await cpu.until_quiet(http, urls, order_deadline)
        cpu_after = await _cpu(http, urls, redis_url, system, broker_pid)
        spent = cpu.CpuSpent.between(cpu_before, cpu_after)
        audit, audit_seconds = await settled_audit(http, urls[0], order_deadline)
        progress.update(settling, total=1, completed=1)
        healths = await asyncio.gather(*(expect(http, "GET", f"{url}/health") for url in urls))
    return Figures(
        plan,
        None if system is None else system.server.settings.processes,
        outcomes,
        seconds,
        audit,
        audit_seconds,
        vitals_of(healths, [] if system is None else system.peaks()),
        spent,
    )


async def _cpu(
    http: aiohttp.ClientSession,
    urls: Sequence[str],
    redis_url: str | None,
    system: System | None,
    broker_pid: int | None,
) -> cpu.CpuSample:
    """The CPU used so far: a system the bench started, every process of it (from /proc); one
    it did not, what each front door's `/metrics` says (one process each); and the broker's."""
    broker = None if broker_pid is None else cpu_seconds(broker_pid)
    if system is None:
        return replace(await cpu.sample(http, urls, redis_url), broker=broker)
    servers, redis = system.cpu()
    if redis is None and redis_url is not None:
        redis = await cpu.redis_cpu(redis_url)
    return cpu.CpuSample(servers, redis, broker)


async def require_empty(http: aiohttp.ClientSession, url: str) -> None:
    """A system the bench starts begins with empty tables, so that its figures and its audit
    count this run alone; the bench never deletes anything, so a database with data in it
    stops the run."""
    counts = (await expect(http, "GET", f"{url}/audit"))["counts"]
    found = ", ".join(f"{counts[what]} {what}" for what in EMPTY if counts.get(what))
    if found:
        raise BenchError(
            f"the database already holds {found}; the bench deletes nothing: "
            "give --database-url an empty database"
        )


async def _stock_the_shop(
    http: aiohttp.ClientSession,
    urls: Sequence[str],
    plan: Plan,
    rng: random.Random,
    progress: Progress,
) -> list[dict[str, Any]]:
    """Create the plan's items and users; the orders to place."""
    stocking = progress.add_task("stocking the shop", total=plan.items + plan.users)

    def created() -> None:
        progress.advance(stocking)

    item_bodies = plan.item_bodies(rng)
    items = await create_all(http, urls, "/items", item_bodies, plan.concurrency, created)
    user_bodies = plan.user_bodies([body["price"] for body in item_bodies])
    users = await create_all(http, urls, "/users", user_bodies, plan.concurrency, created)
    return plan.orders(users, items, rng)
