"""How a service is declared: as data the runtime reads, not as code that subscribes itself.

A service is its steps (what it does on which events, and what it may emit), the commands that
change its state and the queries that read it. From these declarations the node knows what to
subscribe to, which services hold state per order and which the audit checks, and the tests
derive the saga's topology.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from tortoise.models import Model

from sagashop.events import Event, EventName
from sagashop.names import Request
from sagashop.store.book import Keyed
from sagashop.store.journal import DeadLetter, StepRecord

T = TypeVar("T")
Handler = Callable[..., Coroutine[Any, Any, Any]]
StepAction = Callable[..., Event | None]
"""`run(event, book, **dependencies)`: decides on the batch's rows (`Book`), in plain Python,
and returns the event the step emits, if any."""


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
    settling: bool = False
    """Taken once the purchase's outcome is known (the order completed or cancelled): nobody
    waits for it, so the actor holds it back a moment for others to share its transaction
    (`ServiceActor`). At a few hundred purchases a second most steps would otherwise be a
    transaction each."""

    def __post_init__(self) -> None:
        if self.fails_as is not None and self.fails_as not in self.emits:
            raise ValueError(f"step {self.name}: fails_as {self.fails_as} is not in emits")


def step(
    name: str,
    on: Iterable[EventName],
    run: StepAction,
    emits: Iterable[EventName] = (),
    fails_as: EventName | None = None,
    settling: bool = False,
) -> Step:
    return Step(name, frozenset(on), run, frozenset(emits), fails_as, settling)


@dataclass(frozen=True)
class Kept:
    """A table of a service's own per-order records that retention prunes with its step rows
    (`sagashop.saga.retention`), by the column that dates them."""

    model: type[Model]
    dated_by: str


@dataclass(frozen=True)
class Service:
    """A service as the runtime sees it. Handlers name the dependencies they need as
    keyword-only parameters; `bind` supplies them (see `sagashop.bootstrap`)."""

    name: str
    records: type[StepRecord]
    dead_letters: type[DeadLetter]
    steps: tuple[Step, ...] = ()
    tables: tuple[Keyed, ...] = ()
    """What its steps read and write, by the keys their events carry (see `Book`)."""
    commands: Mapping[Request, Handler] = field(default_factory=dict)
    """Requests that change state: they go through the mailbox, one at a time, and are retried
    like steps, so each must be safe to run twice (ids are chosen by the caller)."""
    batched: Mapping[Request, Handler] = field(default_factory=dict)
    """Commands taken in batches: those of one kind waiting together in the mailbox are handed
    over at once, as a list of their arguments, and answered with a list (an exception in it
    is that one's answer), so that they share one transaction."""
    queries: Mapping[Request, Handler] = field(default_factory=dict)
    """Requests that only read: they run straight on the loop, never queued behind events."""
    pruned: tuple[Kept, ...] = ()
    """Its own records of an order that go once the order settled more than `--retain` ago."""
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

    @property
    def models(self) -> str:
        """The module of the service's models (its step records live there too)."""
        return self.records.__module__

    @property
    def stateful(self) -> bool:
        """Whether it holds something per order (and can say what)."""
        return Request.ORDER_STATE in self.queries

    @property
    def audited(self) -> bool:
        return Request.AUDIT_FACTS in self.queries

    def step_for(self, event: EventName) -> Step | None:
        return self._steps_by_event.get(event)

    @functools.cached_property
    def _steps_by_event(self) -> dict[EventName, Step]:
        """Asked for every event taken: a lookup, not a search."""
        return {name: s for s in self.steps for name in s.on}

    def bind(self, deps: Mapping[str, Any]) -> Service:
        return replace(
            self,
            steps=tuple(replace(s, run=inject(s.run, deps)) for s in self.steps),
            commands={name: inject(h, deps) for name, h in self.commands.items()},
            batched={name: inject(h, deps) for name, h in self.batched.items()},
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
