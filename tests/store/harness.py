"""The six services' steps against a real database, with nothing else: no Redis, no actors, no
HTTP. `Steps` takes a step the way a service's actor does (`StepLog.run`, the store's errors
translated), in a task started in the store's context, as `LoopBridge` starts every task."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sagashop.actors import SERVICES
from sagashop.actors.order import Deadlines
from sagashop.actors.payment import PaymentMock
from sagashop.bootstrap import Dependencies
from sagashop.events import Event, EventName, new_id
from sagashop.metrics import Metrics
from sagashop.names import Request
from sagashop.saga import Service, Step, StepLog
from sagashop.saga.observers import Observers
from sagashop.saga.outbox import Relay
from sagashop.saga.watch import StepWatch
from sagashop.store import Store
from sagashop.store.errors import translated
from sagashop.store.journal import StepRecord
from tests.support import eventually

T = TypeVar("T")

PATIENT = Deadlines(saga=3600.0, nudge_after=3600.0)
"""No order of these tests comes due for the sweep unless a test binds other deadlines."""


@dataclass(frozen=True)
class Purchase:
    """A user and an item of their own, and a fresh order of one to buy the other."""

    user_id: str
    item_id: str
    created: Event

    @property
    def order_id(self) -> str:
        return self.created.order_id

    def then(self, name: EventName, reason: str | None = None) -> Event:
        """An event further down this order's saga (every event carries the whole purchase)."""
        return self.created.follow(name, reason)


@dataclass(frozen=True)
class Holdings:
    """What the purchase's user and item have: balance, stock, free bag slots."""

    balance: int
    stock: int
    free: int


class Steps:
    """Every service bound as the node binds it, each with a step log over one `Relay` that is
    never run: what the steps emit is only queued, and stays unpublished in the step logs."""

    def __init__(self, store: Store, backend: str) -> None:
        self.store = store
        self.backend = backend
        self.published: list[Event] = []
        """What the relay published: nothing, as long as no test runs it."""
        self.relay = Relay(self._publish)
        self.watch = StepWatch()
        """Wakes the order service's waiting reads."""
        self.payments = PaymentMock(failure_rate=0.0, test_controls=True)
        self.metrics = Metrics("pubsub", [service.name for service in SERVICES], saga_deadline=30)
        self.logs = {
            service.name: StepLog(
                service.name,
                service.records,
                service.dead_letters,
                Observers([self.relay, self.watch]),
                service.tables,
            )
            for service in SERVICES
        }
        self.services = {service.name: self.bind(service.name) for service in SERVICES}

    def bind(self, service: str, deadlines: Deadlines = PATIENT) -> Service:
        declared = next(s for s in SERVICES if s.name == service)
        deps = Dependencies(
            self.ask, self.logs[service], self.watch, self.payments, deadlines, self.metrics.sagas
        )
        return declared.bind(deps.by_name())

    async def _publish(self, events: Sequence[Event]) -> Sequence[int]:
        self.published.extend(events)
        return [1] * len(events)

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start `work` as a task that reaches the store, its errors translated."""
        return asyncio.get_running_loop().create_task(
            translated(work), context=self.store.context()
        )

    async def within(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` (a step, a command, anything that touches the store) and wait for it."""
        return await self.spawn(work)

    async def read(self, query: Callable[[], Awaitable[T]]) -> T:
        """Build and run a query in the store's context (Tortoise picks its connection when the
        query is built, not when it runs): `await steps.read(lambda: User.get(id=user_id))`."""

        async def run() -> T:
            return await query()

        return await self.within(run())

    async def take(self, service: str, event: Event, chosen: Step | None = None) -> Event | None:
        """Take the step of `service` that handles `event` (or `chosen`), as its actor does."""
        chosen = chosen or self.step(service, event.name)
        return await self.within(self.logs[service].run(chosen, event))

    async def give_up(self, service: str, event: Event, error: BaseException) -> Event | None:
        return await self.within(
            self.logs[service].give_up(self.step(service, event.name), event, error)
        )

    def step(self, service: str, event: EventName) -> Step:
        chosen = self.services[service].step_for(event)
        assert chosen is not None, f"{service} has no step for {event}"
        return chosen

    async def command(self, service: str, request: Request, **args: Any) -> Any:
        """Run a command as the service's actor would (a batched one in a batch of its own)."""
        target = self.services[service]
        if request not in target.batched:
            return await self.within(target.commands[request](**args))
        (answer,) = await self.within(target.batched[request]([args]))
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def query(self, service: str, request: Request, **args: Any) -> Any:
        return await self.within(self.services[service].queries[request](**args))

    async def ask(self, service: str, request: str, args: Mapping[str, Any]) -> Any:
        """`Node.ask` for the order service, answered here (already in the store's context)."""
        target = self.services[service]
        handler = {**target.queries, **target.commands}[Request(request)]
        return await handler(**args)

    async def purchase(
        self, *, balance: int = 10_000, price: int = 1_000, stock: int = 10, quantity: int = 1
    ) -> Purchase:
        """A new user and item (through the services' own commands) and an order.created."""
        user_id, item_id = new_id(), new_id()
        await self.command(
            "user", Request.CREATE_USER, user_id=user_id, username="tester", balance=balance
        )
        await self.command(
            "item", Request.CREATE_ITEM, item_id=item_id, name="Sword", price=price, stock=stock
        )
        created = Event(
            EventName.ORDER_CREATED,
            order_id=new_id(),
            user_id=user_id,
            item_id=item_id,
            quantity=quantity,
            amount=price * quantity,
        )
        return Purchase(user_id, item_id, created)

    async def holdings(self, purchase: Purchase) -> Holdings:
        user = await self.query("user", Request.GET_USER, user_id=purchase.user_id)
        item = await self.query("item", Request.GET_ITEM, item_id=purchase.item_id)
        bag = await self.query("inventory", Request.GET_INVENTORY, user_id=purchase.user_id)
        return Holdings(user["balance"], item["stock"], bag["free"])

    async def held(self, service: str, order_id: str) -> str | None:
        """The state of what `service` holds for the order (None: nothing recorded)."""
        state = await self.query(service, Request.ORDER_STATE, order_id=order_id)
        return None if state is None else str(state["state"])

    async def step_rows(self, service: str, order_id: str) -> list[StepRecord]:
        records = self.services[service].records
        return await self.read(lambda: records.filter(order_id=order_id).order_by("id"))

    async def taken(self, service: str, order_id: str) -> list[tuple[str, str | None]]:
        """The steps `service` took for the order, with the name of what each emitted."""
        rows = await self.step_rows(service, order_id)
        return [(row.step, row.outcome["name"] if row.outcome else None) for row in rows]

    async def unpublished(self, service: str, order_id: str) -> list[tuple[int, Event]]:
        """What the service emitted for the order and the relay has not yet marked published."""
        cutoff = datetime.now(UTC) + timedelta(minutes=1)
        unsent = await self.within(self.logs[service].unpublished(cutoff, 100_000))
        return [(record_id, event) for record_id, event in unsent if event.order_id == order_id]

    async def dead_letters(self, service: str, order_id: str) -> list[dict[str, Any]]:
        letters = await self.within(self.logs[service].dead_letters.listed())
        return [letter for letter in letters if letter["orderId"] == order_id]

    async def others_wait_for_a_lock(self) -> None:
        """Return once another transaction waits for one this test holds open.

        PostgreSQL says so in pg_stat_activity. Tortoise runs one transaction at a time on a
        SQLite database (behind an asyncio lock on its one connection), so there the second
        transaction already waits as soon as the first one began."""
        if self.backend != "postgres":
            return
        query = (
            "SELECT count(*) AS waiting FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )

        async def waiting() -> int:
            rows = await self.within(self.store.tortoise.db("user").execute_query_dict(query))
            return int(rows[0]["waiting"])

        await eventually(waiting, lambda n: n > 0, within=10)
