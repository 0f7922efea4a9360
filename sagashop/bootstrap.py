"""Wiring: the one place that turns `Settings` (and the service declarations) into a running
process.

`run.py` and the tests both go through `running_node`, so the tests start the real system, only
with other settings; a test that needs a service changed passes its own declarations.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pykka
from redis.asyncio import Redis

from sagashop.actors import SERVICES
from sagashop.actors.order import Deadlines
from sagashop.actors.payment import PaymentMock
from sagashop.config import Settings
from sagashop.credentials import check_redis
from sagashop.errors import Conflict, NotFound, Unavailable
from sagashop.events import Event, EventName, new_id
from sagashop.metrics import Metrics, Sagas
from sagashop.monitor import StepFeed
from sagashop.names import Request, ServiceName
from sagashop.private import private_tree
from sagashop.saga import Service, StepLog
from sagashop.saga.actor import Call, Drain, HandleEvents, Mailbox, Pause, ServiceActor
from sagashop.saga.declare import Handler
from sagashop.saga.loop import LoopBridge
from sagashop.saga.observers import Observers, StepLines
from sagashop.saga.outbox import Relay
from sagashop.saga.retention import PRUNE_EVERY, Retention
from sagashop.saga.retry import RetryPolicy
from sagashop.saga.watch import StepWatch
from sagashop.store import Store
from sagashop.store.backup import copy_sqlite
from sagashop.store.errors import StoreUnavailable, translated
from sagashop.store.facts import snapshot
from sagashop.tracing import Tracing
from sagashop.transport import Channels, connect
from sagashop.transport.faults import FaultInjection, Faults
from sagashop.transport.protocol import Done
from sagashop.transport.rpc import RequestReply
from sagashop.transport.signing import Signer, keys_for
from sagashop.vitals import LoopLag

log = logging.getLogger(__name__)

PAUSE_WITHIN = 60.0
"""Seconds the actors wait for a backup's copy at most (then they go on, and it is refused)."""


@dataclass(frozen=True)
class Dependencies:
    """What a service's handlers may ask for, each by a keyword-only parameter named as one of
    these fields (`Service.bind`): the one list, for the node and for the tests that bind the
    services without one."""

    ask: Callable[..., Awaitable[Any]]
    step_log: StepLog
    watch: StepWatch
    payments: PaymentMock
    deadlines: Deadlines
    sagas: Sagas

    def by_name(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Node:
    """What one process runs: some of the services (perhaps none), the transports to the others,
    and the databases of its services. `ask` reaches a service wherever it runs.

    `catalogue` is every service of the system, here or elsewhere (the six in `sagashop.actors`
    unless a test declares others); `settings.services` names those this process runs.
    `tracing`: spans, when on (`sagashop.tracing.from_environment`, or a test's own)."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis | None,
        catalogue: Sequence[Service] = SERVICES,
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        self.tracing = tracing
        self.redis = redis
        self.catalogue = {service.name: service for service in catalogue}
        self.id = f"{socket.gethostname()}-{os.getpid()}-{new_id()[:8]}"
        channels = self.channels = Channels(settings.namespace)
        self.metrics = Metrics(settings.bus, self.catalogue, settings.saga_deadline)
        self.signer = Signer(
            keys_for(settings.redis_url or "", settings.bus_keys),
            settings.namespace,
            self.metrics.bus_rejected,
        )
        bus = connect(
            settings.bus,
            redis,
            channels,
            self.id,
            settings.reclaim_idle,
            self.signer,
            settings.amqp_url,
        )
        self.link = bus.link
        self.events = FaultInjection(
            bus.events, Faults(settings.fault_drop, settings.fault_duplicate)
        )
        self.rpc = RequestReply(bus.link, channels, self.id, self.signer)
        self.relay = Relay(self._publish, self)
        self.feed = StepFeed(bus.link, channels.monitor(), self.id, self.signer)
        self._step_lines = [StepLines()] if settings.log_steps else []
        self.store = store_for(settings, [self.catalogue[name] for name in settings.services])
        self.payments = PaymentMock(
            settings.payment_failure_rate, settings.payment_seed, settings.test_controls
        )
        self.deadlines = Deadlines(settings.saga_deadline, settings.nudge_after)
        self.services: dict[str, Service] = {}
        self.step_logs: dict[str, StepLog] = {}
        self.retention: dict[str, Retention] = {}
        self.actors: dict[str, Any] = {}
        self._consumers = {
            name: [s.name for s in self.catalogue.values() if s.step_for(name)]
            for name in EventName
        }
        """Each event's services: those with a step it calls for."""
        self.lag = LoopLag()
        self.metrics.watch(
            lambda: self.relay.backlog,
            lambda: self.metrics.sagas.in_flight,
            lambda: self.lag.latest,
            lambda: self.lag.longest,
        )
        self._relay_task: asyncio.Task[None] | None = None
        self._periodic: list[asyncio.Task[None]] = []
        self._loop: LoopBridge | None = None

    @property
    def loop(self) -> LoopBridge:
        assert self._loop is not None, "the node is not started"
        return self._loop

    async def start(self) -> None:
        self._loop = LoopBridge(asyncio.get_running_loop(), self.store.context)
        if self.settings.data_dir.is_dir():
            private_tree(self.settings.data_dir)
        if self.settings.services:
            await self.loop.spawn(self.store.open(self.settings.migrate))
        for name in self.settings.services:
            self._start_service(self.catalogue[name])
        self._relay_task = self.loop.spawn(self.relay.run(list(self.step_logs.values())))
        self._periodic.append(asyncio.create_task(self.lag.watch()))
        if self.services:
            self._periodic.append(asyncio.create_task(self.feed.run()))
        await self.rpc.start(list(self.services), self.dispatch)
        handled = {name: service.events for name, service in self.services.items()}
        await self.events.start(handled, self._receive)
        for name, service in self.services.items():
            for work, run in service.periodic.items():
                self._periodic.append(asyncio.create_task(self._every(f"{name}.{work}", run)))
            pruning = self._every(f"{name}.prune", partial(self.prune_one, name), PRUNE_EVERY)
            self._periodic.append(asyncio.create_task(pruning))
        log.info(
            "node %s runs %s on %s",
            self.id,
            ", ".join(self.services) or "no services",
            self.settings.bus,
        )

    def _start_service(self, declared: Service) -> None:
        name = declared.name
        watch = StepWatch()
        observers = Observers(
            [self.relay, watch, self.feed, *self._step_lines], self.metrics.observer_failed
        )
        step_log = StepLog(
            name,
            declared.records,
            declared.dead_letters,
            observers,
            declared.tables,
            self.store.databases[name],
            self.tracing,
        )
        deps = Dependencies(
            self.ask, step_log, watch, self.payments, self.deadlines, self.metrics.sagas
        )
        bound = declared.bind(deps.by_name())
        service = replace(
            bound,
            queries={
                **bound.queries,
                Request.TIMELINE: step_log.timeline,
                Request.DEAD_LETTERS: step_log.dead_letters.listed,
                Request.COUNT_DEAD_LETTERS: step_log.dead_letters.count,
            },
            commands={
                **bound.commands,
                Request.REPLAY_DEAD_LETTER: self._replayer(name, step_log),
            },
        )
        self.services[name] = service
        self.step_logs[name] = step_log
        keep = timedelta(seconds=self.settings.retain)
        self.retention[name] = Retention(step_log, keep, self._settled, declared.pruned)
        self.actors[name] = self._start_actor(service, step_log)

    def _start_actor(self, service: Service, step_log: StepLog) -> Any:
        """The service's actor, its steps and its mailbox measured."""
        measured = self.metrics.service(service)
        actor = ServiceActor.start(service, step_log, self.loop, RetryPolicy(), measured)
        mailbox = actor.actor_inbox
        assert isinstance(mailbox, Mailbox)
        self.metrics.watch_mailbox(service.name, mailbox.depth)
        return actor

    def _replayer(self, name: str, step_log: StepLog) -> Handler:
        async def replay_dead_letter(letter_id: int) -> dict[str, Any]:
            """Deliver a dead letter's event to its service again (after a fix, say)."""
            event = await step_log.dead_letters.exhume(letter_id)
            self.actors[name].tell(HandleEvents((event,)))
            self.metrics.replayed(name)
            return {"replayed": f"{name}-{letter_id}", "orderId": event.order_id}

        return replay_dead_letter

    async def prune_one(self, service: str, now: datetime | None = None) -> int:
        """One batch of `service`'s retention (see `sagashop.saga.retention`)."""
        return await self.retention[service].prune(now or datetime.now(UTC))

    async def prune(self, now: datetime | None = None) -> int:
        """One batch of every service's retention, each in the store's context."""
        pruned = [self.loop.spawn(self.prune_one(name, now)) for name in self.services]
        return sum(await asyncio.gather(*pruned))

    async def _settled(self, order_ids: Sequence[str], before: datetime) -> list[str]:
        args = {"order_ids": list(order_ids), "before": before.isoformat()}
        return list(await self.ask(ServiceName.ORDER, Request.SETTLED_ORDERS, args))

    async def _every(self, what: str, run: Handler, every: float | None = None) -> None:
        while True:
            await asyncio.sleep(every or self.settings.sweep_every)
            try:
                await self.loop.spawn(translated(run()))
            except StoreUnavailable as error:  # the next round tries again: no traceback
                log.warning("%s: the database is unreachable (%s)", what, error)
            except Exception:
                log.exception("%s failed", what)

    async def backup(self) -> tuple[Path, list[Path]]:
        """A consistent copy of every service's SQLite file, online: each actor here finishes
        its batch and waits, the files are copied, the actors go on. With no step taken during
        the copy, every effect in one file has its cause in another (the saga's order); the
        events in flight at the moment are in flight after a restore too, and the outbox and
        the sweep deliver them. The directory (under the data directory's `backups/`) and
        the copies."""
        files = self._backup_files()
        to = self.settings.data_dir / "backups" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        resume = threading.Event()
        loop = asyncio.get_running_loop()
        parked = [loop.create_future() for _ in self.actors]
        started = loop.time()
        try:
            for actor, future in zip(self.actors.values(), parked, strict=True):
                actor.tell(Pause(future, resume, PAUSE_WITHIN))
            await _paused(parked)
            copies = await asyncio.to_thread(copy_sqlite, files, to)
        finally:
            resume.set()
        if loop.time() - started >= PAUSE_WITHIN:
            raise Unavailable("the copy took longer than the services may pause; try again")
        return to, copies

    def _backup_files(self) -> dict[str, str]:
        """The SQLite files a backup copies, if this process alone holds every service's."""
        if set(self.services) != set(self.catalogue):
            raise Conflict(
                "an online backup pauses every service: run it on a process that runs them all "
                "(with services split over processes, keep them on PostgreSQL and use pg_dump)"
            )
        files = {name: db.sqlite_file for name, db in self.store.databases.items()}
        if None in files.values():
            raise Conflict("the services' tables are not in SQLite files: use pg_dump")
        return {name: path for name, path in files.items() if path is not None}

    async def stop(self) -> None:
        """Stop taking work, finish what is queued, publish what it emitted, then close.
        Safe to call after a start that failed half-way."""
        if self._loop is None:
            return
        await self.events.stop()
        await self.rpc.stop()
        await _cancel(self._periodic)
        await self._drain_actors()
        if self._relay_task is not None and not self._relay_task.done():
            await self._flush_relay()
        await _cancel([self._relay_task] if self._relay_task else [])
        await self.events.close()
        if self.settings.services:
            await self.loop.spawn(self.store.close())

    async def _flush_relay(self) -> None:
        """What the steps emitted, published before the stop; only a running relay can (a stop
        during start-up, before it ran, would otherwise wait out the whole timeout)."""
        try:
            await asyncio.wait_for(self.relay.flush(), timeout=10)
        except TimeoutError:
            log.warning("some events were not published; the next start sends them")

    async def readiness(self) -> dict[str, str]:
        """What this process needs in order to serve, each "ok" or why not: Redis (if it uses
        one), the broker (on RabbitMQ), the database of each of its services, and each service's
        actor."""
        checks = {}
        if self.redis is not None:
            checks["redis"] = self._checked(self.redis.ping())
        if self.settings.bus == "rabbitmq":
            checks["rabbitmq"] = self._checked(self.link.ping())
        for name in self.services:
            checks[f"database {name}"] = self._checked(self.loop.spawn(self.store.ping(name)))
        found = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        for name, actor in self.actors.items():
            found[f"actor {name}"] = "ok" if actor.is_alive() else "stopped"
        return found

    @staticmethod
    async def _checked(probe: Awaitable[Any], within: float = 2.0) -> str:
        try:
            async with asyncio.timeout(within):
                await probe
        except TimeoutError:
            return f"no answer within {within:g}s"
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return "ok"

    async def _drain_actors(self) -> None:
        loop = asyncio.get_running_loop()
        drained = []
        for actor in self.actors.values():
            if not actor.is_alive():
                continue
            reply: asyncio.Future[None] = loop.create_future()
            actor.tell(Drain(reply))
            drained.append(reply)
        await asyncio.gather(*drained)
        alive = [actor for actor in self.actors.values() if actor.is_alive()]
        await asyncio.gather(*(asyncio.to_thread(actor.stop) for actor in alive))

    async def ask(
        self, service: str, request: str, args: Mapping[str, Any], patience: float = 0.0
    ) -> Any:
        """Ask a service, in this process or another: the answer is the same. `patience`: how
        much longer than usual a request that itself waits may take."""
        if service in self.services:
            return await self.dispatch(service, request, dict(args))
        return await self.rpc.ask(service, request, args, patience)

    async def dispatch(self, service: str, request: str, args: dict[str, Any]) -> Any:
        """Answer a request to one of this process's services. Queries run straight on the loop
        (the audit's facts all from one snapshot of the service's tables); commands wait for their
        turn in the service's mailbox."""
        target = self.services[service]
        if request in target.queries:
            query = target.queries[Request(request)]
            if request == Request.AUDIT_FACTS:
                return await self.loop.spawn(translated(_in_snapshot(service, query, args)))
            return await self.loop.spawn(translated(query(**args)))
        if request in target.commands or request in target.batched:
            reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.actors[service].tell(Call(Request(request), args, reply))
            return await reply
        raise NotFound(f"the {service} service has no request {request!r}")

    def _receive(self, service: str, events: list[Event], done: Done | None) -> None:
        if self.tracing is not None:
            events = self.tracing.received(service, events, self.settings.bus)
        self.actors[service].tell(HandleEvents(tuple(events), done))
        self.metrics.received.count(events)

    def handles_here(self, event: Event) -> bool:
        """Whether this process runs every service with a step for the event: then it never
        goes through Redis (see `Relay`)."""
        consumers = self._consumers[event.name]
        return bool(consumers) and all(name in self.services for name in consumers)

    def hand_over(self, events: Sequence[Event], taken: Callable[[], None]) -> bool:
        """Tell each service here its events as one batch (under the bus's faults, which lose
        or double some on purpose in chaos runs); `taken` once every one of them has taken its
        own. False if one of them has stopped (the node is stopping): then none is told."""
        with self._publishing(events, "local") as outgoing:
            return self._tell_here(outgoing, taken)

    def _tell_here(self, events: Sequence[Event], taken: Callable[[], None]) -> bool:
        batches: dict[str, list[Event]] = {}
        for event, copies in zip(events, self.events.copies(events), strict=True):
            for name in self._consumers[event.name]:
                batches.setdefault(name, []).extend([event] * copies)
        actors = {name: self.actors[name] for name in batches}
        if not all(actor.is_alive() for actor in actors.values()):
            return False
        countdown = Countdown(len(batches), taken)
        for name, batch in batches.items():
            try:
                actors[name].tell(HandleEvents(tuple(batch), countdown.one_done))
            except pykka.ActorDeadError:
                return False  # what was told is taken, and will be again: the steps replay
            self.metrics.handed_over.count(batch)
            self.metrics.taken_over.count(batch)
        return True

    async def _publish(self, events: Sequence[Event]) -> list[int]:
        """The relay's way onto the bus, counting what went out."""
        with self._publishing(events, self.settings.bus) as outgoing:
            receivers = await self.events.publish(outgoing)
        self.metrics.published.count(events)
        return receivers

    def _publishing(
        self, events: Sequence[Event], system: str
    ) -> AbstractContextManager[Sequence[Event]]:
        """The events as they go out: with tracing on, each stamped with its publish span."""
        if self.tracing is None:
            return nullcontext(events)
        return self.tracing.publishing(events, system)


def store_for(settings: Settings, services: Sequence[Service]) -> Store:
    """The databases of these services, as the settings place them."""
    return Store(
        {service.name: settings.database_url_for(service.name) for service in services},
        {service.name: service.models for service in services},
    )


class Countdown:
    """Calls `then` once `count` parts are done (from any thread)."""

    def __init__(self, count: int, then: Callable[[], None]) -> None:
        self._left = count
        self._then = then
        self._lock = threading.Lock()
        if count == 0:
            then()

    def one_done(self) -> None:
        with self._lock:
            self._left -= 1
            finished = self._left == 0
        if finished:
            self._then()


async def _in_snapshot(service: str, query: Handler, args: dict[str, Any]) -> Any:
    async with snapshot(service):
        return await query(**args)


async def _paused(parked: Sequence[asyncio.Future[None]]) -> None:
    try:
        async with asyncio.timeout(PAUSE_WITHIN / 2):
            await asyncio.gather(*parked)
    except TimeoutError:
        raise Unavailable("the services did not pause in time (a long batch?); try again") from None


CANCEL_LOOKS_EVERY = 0.5


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the tasks until they have ended. Once is not always enough on Python 3.11: a
    cancel that lands as a Redis command's own timeout expires is taken for that timeout (an
    OSError, which a loop that rides out Redis outages catches), and the task goes on; a stop
    then waited for it for good (seen after a Redis restart)."""
    while waiting := [task for task in tasks if not task.done()]:
        for task in waiting:
            task.cancel()
        await asyncio.wait(waiting, timeout=CANCEL_LOOKS_EVERY)


@asynccontextmanager
async def running_node(
    settings: Settings, catalogue: Sequence[Service] = SERVICES, tracing: Tracing | None = None
) -> AsyncIterator[Node]:
    """A started node, stopped (drained) on the way out."""
    redis = None if settings.redis_url is None else redis_client(settings.redis_url)
    node = Node(settings, redis, catalogue, tracing)
    try:
        if redis is not None:
            await check_redis(redis, settings.redis_url or "", settings.redis_insecure)
        await node.start()
        yield node
    finally:
        await node.stop()
        if redis is not None:
            await redis.aclose()


def redis_client(url: str) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=True,
        encoding_errors="surrogateescape",  # bytes that are not UTF-8 reach the signer intact
        health_check_interval=10,
    )
