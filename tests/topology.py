"""The saga's topology, derived from the services' declared steps, for tests to expect.

A test that restates the chain of events by hand keeps a copy of the declarations that drifts
when a step changes. Reading the chains from `sagashop.actors.SERVICES` instead keeps one source:
`tests/unit/test_topology.py` pins the derived chains to literal lists (the specification,
spelled out once), and the system tests compare what really happened with the derivation.
"""

from __future__ import annotations

from collections.abc import Iterable

from sagashop.actors import SERVICES
from sagashop.events import EventName as E

# Emitted by the order service's commands rather than by a step: place_order starts a saga,
# and the deadline sweep starts the undoing of one that took too long.
STARTS = {E.ORDER_CREATED, E.ORDER_EXPIRED}
STARTED_BY = "order"


def followers() -> dict[E, set[E]]:
    """Each event, with every event the steps that handle it may emit."""
    graph: dict[E, set[E]] = {name: set() for name in E}
    for service in SERVICES:
        for step in service.steps:
            for handled in step.on:
                graph[handled] |= step.emits
    return graph


def trigger(service: str, step: str) -> E:
    """The one event that sets off a service's step, as declared: a test that takes the step
    by hand asks here, so a step set off by another event needs no change in the test."""
    declared = next(s for s in SERVICES if s.name == service)
    (event,) = [name for chosen in declared.steps if chosen.name == step for name in chosen.on]
    return event


def chain_from(start: E) -> list[E]:
    """Follow an event through the steps that handle it, while that path is a single one."""
    path, graph = [start], followers()
    while len(graph[path[-1]]) == 1:
        path.append(next(iter(graph[path[-1]])))
    return path


def is_rejection(event: E) -> bool:
    return event.endswith(".rejected")


def emitter(event: E) -> str:
    """The service that emits `event`, as the order's timeline names it: the one whose step
    declares it, or the order service for the events its commands emit (`STARTS`)."""
    if event in STARTS:
        return STARTED_BY
    found = [s.name for s in SERVICES for step in s.steps if event in step.emits]
    if len(found) != 1:
        raise ValueError(f"{event} is declared by {found}, not by exactly one service")
    return found[0]


def happy_path() -> list[E]:
    """The saga when nothing fails: from order.created, the one outcome of each step that is
    not a rejection, until no step follows (the order closed, the user told)."""
    path, graph = [E.ORDER_CREATED], followers()
    while graph[path[-1]]:
        onward = [name for name in graph[path[-1]] if not is_rejection(name)]
        if len(onward) != 1 or onward[0] in path:
            raise ValueError(f"after {path[-1]} the happy path is not one new event: {onward}")
        path.append(onward[0])
    return path


def failing_at(rejection: E) -> list[E]:
    """The saga when the step that can emit `rejection` does: the happy path up to the event
    that step handles, then the undoing the rejection starts."""
    forward, graph = happy_path(), followers()
    causes = [i for i, name in enumerate(forward) if rejection in graph[name]]
    if len(causes) != 1:
        raise ValueError(f"{rejection} does not follow exactly one event of the happy path")
    return [*forward[: causes[0] + 1], *chain_from(rejection)]


def with_emitters(events: Iterable[E]) -> list[tuple[str, str]]:
    """The events as `tests.support.emitted` reports them: (service, event name) pairs."""
    return [(emitter(event), str(event)) for event in events]
