"""Wiring: the one place that turns `Settings` into a running process.

`run.py` and the tests both go through `running_node`, so the tests start the real system, only
with other settings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from redis.asyncio import Redis

from sagashop.actors import SERVICES
from sagashop.actors.bus import Bus, Done, Faults
from sagashop.actors.order import Deadlines
from sagashop.actors.payment import PaymentMock
from sagashop.actors.runtime import (
    Call,
    Deliver,
    Drain,
    Handler,
    LoopBridge,
    RetryPolicy,
    Service,
    ServiceActor,
)
from sagashop.actors.steplog import Relay, StepLog
from sagashop.actors.streams import StreamEvents
from sagashop.config import Settings
from sagashop.errors import NotFound
from sagashop.events import Event, new_id
from sagashop.store import Store

log = logging.getLogger(__name__)


class Node:
    """What one process runs: some of the services (perhaps none), the bus to the others, and
    the databases of its services. `ask` reaches a service wherever it runs."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.id = f"{socket.gethostname()}-{os.getpid()}-{new_id()[:8]}"
        streams = (
            StreamEvents(redis, settings.namespace, self.id) if settings.bus == "streams" else None
        )
        faults = Faults(settings.fault_drop, settings.fault_duplicate)
        self.bus = Bus(redis, settings.namespace, self.id, streams, faults)
        self.relay = Relay(self.bus.publish)
        self.store = Store({name: settings.database_url_for(name) for name in settings.services})
        self.payments = PaymentMock(settings.payment_failure_rate, settings.payment_seed)
        self.deadlines = Deadlines(settings.saga_deadline, settings.nudge_after)
        self.services: dict[str, Service] = {}
        self.step_logs: dict[str, StepLog] = {}
        self.actors: dict[str, Any] = {}
        self._relay_task: asyncio.Task[None] | None = None
        self._periodic: list[asyncio.Task[None]] = []
        self._loop: LoopBridge | None = None

    @property
    def loop(self) -> LoopBridge:
        assert self._loop is not None, "the node is not started"
        return self._loop

    async def start(self) -> None:
        self._loop = LoopBridge(asyncio.get_running_loop(), self.store.context)
        if self.settings.services:
            await self.loop.spawn(self.store.open())
        for name in self.settings.services:
            self._start_service(name)
        self._relay_task = self.loop.spawn(self.relay.run(list(self.step_logs.values())))
        handled = {name: service.events for name, service in self.services.items()}
        await self.bus.start(handled, self._deliver, self.dispatch)
        for name, service in self.services.items():
            for work, run in service.periodic.items():
                self._periodic.append(asyncio.create_task(self._every(f"{name}.{work}", run)))
        log.info(
            "node %s runs %s on %s",
            self.id,
            ", ".join(self.services) or "no services",
            self.settings.bus,
        )

    def _start_service(self, name: str) -> None:
        declared = SERVICES[name]
        step_log = StepLog(name, declared.records, declared.dead_letters, self.relay)
        deps = {
            "ask": self.ask,
            "steps": step_log,
            "payments": self.payments,
            "deadlines": self.deadlines,
        }
        bound = declared.bind(deps)
        service = replace(
            bound,
            queries={**bound.queries, "steps": step_log.history, "dead_letters": step_log.dead},
            commands={**bound.commands, "replay_dead_letter": self._replayer(name, step_log)},
        )
        self.services[name] = service
        self.step_logs[name] = step_log
        self.actors[name] = ServiceActor.start(service, step_log, self.loop, RetryPolicy())

    def _replayer(self, name: str, step_log: StepLog) -> Handler:
        async def replay_dead_letter(letter_id: int) -> dict[str, Any]:
            """Deliver a dead letter's event to its service again (after a fix, say)."""
            event = await step_log.exhume(letter_id)
            self.actors[name].tell(Deliver((event,)))
            return {"replayed": f"{name}-{letter_id}", "orderId": event.order_id}

        return replay_dead_letter

    async def _every(self, what: str, run: Handler) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_every)
            try:
                await self.loop.spawn(run())
            except Exception:
                log.exception("%s failed", what)

    async def stop(self) -> None:
        """Stop taking work, finish what is queued, publish what it emitted, then close.
        Safe to call after a start that failed half-way."""
        if self._loop is None:
            return
        await self.bus.stop()
        await _cancel(self._periodic)
        await self._drain_actors()
        try:
            await asyncio.wait_for(self.relay.flush(), timeout=10)
        except TimeoutError:
            log.warning("some events were not published; the next start sends them")
        await _cancel([self._relay_task] if self._relay_task else [])
        if self.settings.services:
            await self.loop.spawn(self.store.close())

    async def _drain_actors(self) -> None:
        loop = asyncio.get_running_loop()
        drained = []
        for actor in self.actors.values():
            reply: asyncio.Future[None] = loop.create_future()
            actor.tell(Drain(reply))
            drained.append(reply)
        await asyncio.gather(*drained)
        await asyncio.gather(*(asyncio.to_thread(actor.stop) for actor in self.actors.values()))

    async def ask(self, service: str, request: str, args: Mapping[str, Any]) -> Any:
        """Ask a service, in this process or another: the answer is the same."""
        if service in self.services:
            return await self.dispatch(service, request, dict(args))
        return await self.bus.ask(service, request, args)

    async def dispatch(self, service: str, request: str, args: dict[str, Any]) -> Any:
        """Answer a request to one of this process's services. Queries run straight on the loop;
        commands wait for their turn in the service's mailbox."""
        target = self.services[service]
        if request in target.queries:
            return await self.loop.spawn(target.queries[request](**args))
        if request in target.commands:
            reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.actors[service].tell(Call(request, args, reply))
            return await reply
        raise NotFound(f"the {service} service has no request {request!r}")

    def _deliver(self, service: str, events: list[Event], done: Done | None) -> None:
        self.actors[service].tell(Deliver(tuple(events), done))


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@asynccontextmanager
async def running_node(settings: Settings) -> AsyncIterator[Node]:
    """A started node, stopped (drained) on the way out."""
    if settings.redis_url is None:
        raise ValueError("running_node needs a Redis URL (run.py starts an embedded Redis)")
    redis = Redis.from_url(settings.redis_url, decode_responses=True, health_check_interval=10)
    node = Node(settings, redis)
    try:
        await redis.ping()
        await node.start()
        yield node
    finally:
        await node.stop()
        await redis.aclose()
