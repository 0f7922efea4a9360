"""The small runtime the six services share.

A service is declared as data (`Service`): the steps it takes on events, the commands that change
its state and the queries that read it. Each service runs in a pykka actor, which gives it a
mailbox and handles one message at a time. The actor's thread never touches a socket: it hands
each piece of work to the process's one event loop and waits for it (`LoopBridge.run`), and the
loop never waits on a thread; replies travel back with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import pykka
from tortoise.exceptions import DBConnectionError, IntegrityError, OperationalError

from sagashop.events import Event, EventName
from sagashop.store.base import DeadLetter, StepRecord

if TYPE_CHECKING:
    from sagashop.actors.steplog import StepLog

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[..., Coroutine[Any, Any, Any]]
StepAction = Callable[..., Coroutine[Any, Any, Event | None]]


class Contention(Exception):
    """The state moved under a step while it ran (another process got there first): take the
    step again. IntegrityError from a unique constraint means the same."""


def refused(reason: str | None) -> str:
    """The reason a conditional update found nothing to change, as the rules explain it.

    If the rules see no reason, the state moved between the update and the read: retry.
    """
    if reason is None:
        raise Contention("the state changed while the step ran")
    return reason


@dataclass(frozen=True)
class Step:
    """How a service reacts to some events; it takes effect once per order, however often
    those events are delivered (see `StepLog`)."""

    name: str
    on: frozenset[EventName]
    run: StepAction
    emits: frozenset[EventName] = frozenset()
    fails_as: EventName | None = None
    """Emitted, with the error as its reason, when `run` keeps failing, so the saga compensates."""

    def __post_init__(self) -> None:
        if self.fails_as is not None and self.fails_as not in self.emits:
            raise ValueError(f"step {self.name}: fails_as {self.fails_as} is not in emits")


def step(
    name: str,
    on: Iterable[EventName],
    run: StepAction,
    emits: Iterable[EventName] = (),
    fails_as: EventName | None = None,
) -> Step:
    return Step(name, frozenset(on), run, frozenset(emits), fails_as)


@dataclass(frozen=True)
class Service:
    """A service as the runtime sees it. Handlers name the dependencies they need as
    keyword-only parameters; `bind` supplies them (see `sagashop.bootstrap`)."""

    name: str
    records: type[StepRecord]
    dead_letters: type[DeadLetter]
    steps: tuple[Step, ...] = ()
    commands: Mapping[str, Handler] = field(default_factory=dict)
    """Requests that change state: they go through the mailbox, one at a time, and are retried
    like steps, so each must be safe to run twice (ids are chosen by the caller)."""
    queries: Mapping[str, Handler] = field(default_factory=dict)
    """Requests that only read: they run straight on the loop, never queued behind events."""
    periodic: Mapping[str, Handler] = field(default_factory=dict)
    """Work the runtime starts on its own every few seconds (`Settings.sweep_every`), straight
    on the loop: it must not wait behind the events it is there to rescue, so every write it
    makes is conditional."""

    def __post_init__(self) -> None:
        handled = [name for s in self.steps for name in s.on]
        twice = {name for name in handled if handled.count(name) > 1}
        if twice:
            raise ValueError(f"{self.name}: more than one step handles {sorted(twice)}")

    @property
    def events(self) -> frozenset[EventName]:
        return frozenset(name for s in self.steps for name in s.on)

    def step_for(self, event: EventName) -> Step | None:
        return next((s for s in self.steps if event in s.on), None)

    def bind(self, deps: Mapping[str, Any]) -> Service:
        return replace(
            self,
            steps=tuple(replace(s, run=inject(s.run, deps)) for s in self.steps),
            commands={name: inject(h, deps) for name, h in self.commands.items()},
            queries={name: inject(h, deps) for name, h in self.queries.items()},
            periodic={name: inject(h, deps) for name, h in self.periodic.items()},
        )


def inject(handler: Callable[..., T], deps: Mapping[str, Any]) -> Callable[..., T]:
    """Bind the handler's keyword-only parameters to the dependencies of the same name."""
    wanted = [p for p in inspect.signature(handler).parameters.values() if p.kind is p.KEYWORD_ONLY]
    missing = [p.name for p in wanted if p.name not in deps and p.default is p.empty]
    if missing:
        raise TypeError(f"{handler.__qualname__} needs {missing}, which bootstrap does not provide")
    given = {p.name: deps[p.name] for p in wanted if p.name in deps}
    return functools.partial(handler, **given) if given else handler


class LoopBridge:
    """The process's event loop, as the actors' threads see it."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, context: Callable[[], contextvars.Context]
    ) -> None:
        self._loop = loop
        self._context = context

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the loop and wait for it, blocking the calling thread, never the loop."""
        submit = asyncio.run_coroutine_threadsafe
        return self._context().run(submit, work, self._loop).result()

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start `work` as a task of its own; call from the loop's thread."""
        return self._loop.create_task(work, context=self._context())

    def settle(self, future: asyncio.Future[T], outcome: Callable[[], T]) -> None:
        """Resolve a loop future from a thread with what `outcome` returns or raises."""
        try:
            value = outcome()
        except Exception as error:
            self._loop.call_soon_threadsafe(_fail, future, error)
        else:
            self._loop.call_soon_threadsafe(_succeed, future, value)


def _succeed(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    DBConnectionError,
    OperationalError,
    ConnectionError,
    OSError,
    TimeoutError,
    # asyncpg lets these through untranslated when PostgreSQL drops a connection:
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How long a step is retried before it counts as failed.

    A database or network that is away (transient errors) gets a time budget; a conflict with a
    concurrent step (IntegrityError) is simply tried again; anything else looks like a bug or a
    poison message and gets a few attempts.
    """

    attempts: int = 3
    conflicts: int = 10
    transient_budget: float = 30.0
    first_delay: float = 0.02
    max_delay: float = 2.0

    def call(self, work: Callable[[], T], what: str) -> T:
        started = time.monotonic()
        failures = conflicts = 0
        while True:
            try:
                return work()
            except (IntegrityError, Contention):
                conflicts += 1
                if conflicts >= self.conflicts:
                    raise
                delay = self.first_delay
            except TRANSIENT_ERRORS as error:
                failures += 1
                if time.monotonic() - started > self.transient_budget:
                    raise
                delay = self._delay(failures)
                log.warning("%s: %s; retrying in %.2fs", what, error, delay)
            except Exception as error:
                failures += 1
                if failures >= self.attempts:
                    raise
                delay = self._delay(failures)
                log.warning("%s: %r; retrying in %.2fs", what, error, delay)
            time.sleep(delay)

    def _delay(self, failures: int) -> float:
        return min(self.max_delay, self.first_delay * 2.0 ** (failures - 1))


# Messages a ServiceActor understands.


@dataclass(frozen=True)
class Deliver:
    events: tuple[Event, ...]
    done: Callable[[], None] | None = None
    """Called once every event was handled (or given up on): a durable bus acknowledges then."""


@dataclass(frozen=True)
class Call:
    name: str
    args: Mapping[str, Any]
    reply: asyncio.Future[Any]


@dataclass(frozen=True)
class Drain:
    """Answered once everything queued before it has been handled."""

    reply: asyncio.Future[None]


class ServiceActor(pykka.ThreadingActor):
    """One service's mailbox and its worker, handling one message at a time."""

    def __init__(
        self,
        service: Service,
        steps: StepLog,
        loop: LoopBridge,
        retry: RetryPolicy,
    ) -> None:
        super().__init__()
        self.service = service
        self.steps = steps
        self.loop = loop
        self.retry = retry
        self.log = logging.getLogger(f"sagashop.{service.name}")

    def on_receive(self, message: Any) -> None:
        try:
            self._receive(message)
        except Exception:
            # An actor that raises from a told message dies silently; this one logs and goes on.
            self.log.exception("unexpected error handling %r", message)

    def _receive(self, message: Any) -> None:
        match message:
            case Deliver(events, done):
                try:
                    for event in events:
                        self._take_step(event)
                finally:
                    if done is not None:
                        done()
            case Call(name, args, reply):
                command, what = self.service.commands[name], f"{self.service.name}.{name}"
                self.loop.settle(
                    reply, lambda: self.retry.call(lambda: self.loop.run(command(**args)), what)
                )
            case Drain(reply):
                self.loop.settle(reply, lambda: None)
            case _:
                self.log.warning("unknown message %r", message)

    def _take_step(self, event: Event) -> None:
        chosen = self.service.step_for(event.name)
        if chosen is None:
            return
        what = f"order {event.order_id}: {self.service.name}.{chosen.name} on {event.name}"
        try:
            self.retry.call(lambda: self.loop.run(self.steps.run(chosen, event)), what)
        except Exception as error:
            self.log.exception("%s failed for good; it goes to the dead letters", what)
            self.loop.run(self.steps.give_up(chosen, event, error))
