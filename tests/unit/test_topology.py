"""The saga's topology, read from the services' declared steps.

A redelivered event makes its step publish its recorded outcome again, so that losses further
down heal; that only ends if no event can lead back to itself. These tests keep it so, and keep
every failure undone newest first.

The derivation lives in `tests.topology`, where the system tests read what to expect; the chains
are spelled out literally here, and only here, as the specification it must meet.
"""

from __future__ import annotations

from graphlib import TopologicalSorter
from itertools import pairwise

from sagashop.actors import SERVICES
from sagashop.events import EventName as E
from tests.topology import STARTS, chain_from, followers, happy_path


def test_no_event_leads_back_to_itself() -> None:
    predecessors: dict[E, set[E]] = {name: set() for name in E}
    for cause, effects in followers().items():
        for effect in effects:
            predecessors[effect].add(cause)
    TopologicalSorter(predecessors).prepare()  # raises CycleError on a cycle


def test_every_event_is_emitted_by_someone_and_handled_by_someone() -> None:
    emitted = {name for s in SERVICES for step in s.steps for name in step.emits}
    handled = {name for s in SERVICES for name in s.events}
    assert emitted | STARTS == set(E)
    assert handled == set(E)


FORWARD = [
    E.ORDER_CREATED,
    E.BALANCE_RESERVED,
    E.INVENTORY_RESERVED,
    E.ITEM_RESERVED,
    E.PAYMENT_PROCESSED,
    E.ORDER_COMPLETED,
]
SETTLING = [E.BALANCE_SPENT, E.INVENTORY_FILLED, E.ITEM_SOLD, E.NOTIFICATION_SENT]
TOLD = [E.ORDER_CANCELLED, E.NOTIFICATION_SENT]


def test_the_happy_path_reaches_completion() -> None:
    graph = followers()
    for cause, effect in pairwise(FORWARD):
        assert effect in graph[cause]


def test_a_completed_order_settles_step_by_step_and_the_user_is_told() -> None:
    assert chain_from(E.ORDER_COMPLETED) == [E.ORDER_COMPLETED, *SETTLING]


def test_the_derived_happy_path_runs_forward_then_settles() -> None:
    assert happy_path() == [*FORWARD, *SETTLING]


def test_each_failure_is_undone_newest_first_and_the_user_is_told() -> None:
    assert chain_from(E.BALANCE_REJECTED) == [E.BALANCE_REJECTED, *TOLD]
    assert chain_from(E.INVENTORY_REJECTED) == [E.INVENTORY_REJECTED, E.BALANCE_RELEASED, *TOLD]
    assert chain_from(E.ITEM_REJECTED) == [
        E.ITEM_REJECTED,
        E.INVENTORY_RELEASED,
        E.BALANCE_RELEASED,
        *TOLD,
    ]
    assert chain_from(E.PAYMENT_REJECTED) == [
        E.PAYMENT_REJECTED,
        E.ITEM_RELEASED,
        E.INVENTORY_RELEASED,
        E.BALANCE_RELEASED,
        *TOLD,
    ]
    assert chain_from(E.ORDER_EXPIRED) == [
        E.ORDER_EXPIRED,
        E.PAYMENT_REFUNDED,
        E.ITEM_RELEASED,
        E.INVENTORY_RELEASED,
        E.BALANCE_RELEASED,
        *TOLD,
    ]


def test_an_action_that_can_fail_says_how() -> None:
    for service in SERVICES:
        for step in service.steps:
            rejects = {name for name in step.emits if name.endswith(".rejected")}
            assert step.fails_as in rejects | {None}
            assert bool(rejects) == (step.fails_as is not None), (service.name, step.name)


OUTCOMES = {E.ORDER_COMPLETED, E.ORDER_CANCELLED}


def test_exactly_the_steps_after_the_outcome_are_settling() -> None:
    """A settling step may be held back a moment (`ServiceActor`): it must never be one the
    outcome waits for, and every step after the outcome should be one, or it costs a
    transaction of its own."""
    after = set(OUTCOMES)
    for event in OUTCOMES:
        after |= set(chain_from(event))
    for service in SERVICES:
        for step in service.steps:
            assert step.settling == (step.on <= after), (service.name, step.name)
