"""The runtime's own rules: how steps are declared, bound and retried."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from pykka._envelope import Envelope
from tortoise.exceptions import IntegrityError, OperationalError

from sagashop.errors import Conflict, NotFound, Unavailable, answer_to
from sagashop.events import Event, EventName, MalformedEvent
from sagashop.names import Request
from sagashop.saga import Service, inject, step
from sagashop.saga.actor import Call, HandleEvents, Mailbox
from sagashop.saga.retry import RetryPolicy
from sagashop.store.errors import StoreConflict, StoreUnavailable, translated
from sagashop.store.user import UserDeadLetter, UserStep

FAST = RetryPolicy(attempts=3, conflicts=4, transient_budget=0.05, first_delay=0.001)


def nothing(event: Event, book: object) -> None:
    return None


def failing(errors: list[Exception]) -> Callable[[], str]:
    def work() -> str:
        if errors:
            raise errors.pop(0)
        return "done"

    return work


def test_conflicts_and_passing_errors_are_retried() -> None:
    assert (
        FAST.call(
            failing([StoreConflict("dup"), StoreConflict("moved"), StoreUnavailable("locked")]),
            "test",
        )
        == "done"
    )


def test_a_bug_is_given_up_on_after_a_few_attempts() -> None:
    with pytest.raises(ZeroDivisionError):
        FAST.call(failing([ZeroDivisionError()] * 3), "test")
    assert FAST.call(failing([ZeroDivisionError()] * 2), "test") == "done"


def test_an_answer_for_the_caller_is_not_retried() -> None:
    """A command that finds no such user answers 404 at once, not after three slow attempts."""
    errors: list[Exception] = [NotFound("no user"), Conflict("taken")]
    with pytest.raises(NotFound):
        FAST.call(failing(errors), "test")
    with pytest.raises(Conflict):
        FAST.call(failing(errors), "test")


def test_the_systems_own_errors_are_retried_as_what_they_are_not_as_answers() -> None:
    """Only a `CallerError` is an answer: any other error of the tree (the bus refusing a
    message, say) is a failure, retried a few times like a bug."""
    assert FAST.call(failing([MalformedEvent("cut short")] * 2), "test") == "done"
    with pytest.raises(MalformedEvent):
        FAST.call(failing([MalformedEvent("cut short")] * 3), "test")


def test_what_a_caller_is_told_is_decided_by_the_errors_class() -> None:
    assert isinstance(StoreUnavailable("gone").answer(), Unavailable)
    assert StoreUnavailable("gone").answer().status == 503
    missing = NotFound("no user")
    assert missing.answer() is missing
    internal = StoreConflict("dup").answer()
    assert (internal.status, internal.code) == (500, "internal_error")
    assert "dup" not in internal.message, "the details stay in the server's log"


def test_the_systems_own_error_is_logged_where_it_is_answered_and_an_answer_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = logging.getLogger("test")
    assert answer_to(StoreUnavailable("gone"), log, "GET /orders/x").status == 503
    missing = NotFound("no user")
    assert answer_to(missing, log, "GET /user/x") is missing
    assert [r.getMessage() for r in caplog.records] == ["GET /orders/x: StoreUnavailable: gone"]


def test_an_absent_database_is_retried_until_the_budget_runs_out() -> None:
    with pytest.raises(StoreUnavailable):
        FAST.call(failing([StoreUnavailable("gone")] * 1000), "test")


async def raising(error: Exception) -> None:
    raise error


async def test_the_stores_errors_are_translated_at_its_edge() -> None:
    with pytest.raises(StoreConflict):
        await translated(raising(IntegrityError("UNIQUE constraint failed")))
    with pytest.raises(StoreUnavailable):
        await translated(raising(OperationalError("database is locked")))
    with pytest.raises(ZeroDivisionError):
        await translated(raising(ZeroDivisionError()))


def test_dependencies_are_injected_by_name() -> None:
    async def handler(event: Event, *, ask: str, payments: str = "default") -> str:
        return ask + payments

    bound = inject(handler, {"ask": "A", "payments": "P", "other": "O"})
    assert bound.keywords == {"ask": "A", "payments": "P"}  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="ask"):
        inject(handler, {})


def test_one_event_has_one_step_per_service() -> None:
    with pytest.raises(ValueError, match=r"order\.created"):
        Service(
            "user",
            UserStep,
            UserDeadLetter,
            steps=(
                step("a", on=[EventName.ORDER_CREATED], run=nothing),
                step("b", on=[EventName.ORDER_CREATED], run=nothing),
            ),
        )


def test_a_step_fails_only_with_an_event_it_declares() -> None:
    with pytest.raises(ValueError, match="fails_as"):
        step("a", on=[EventName.ORDER_CREATED], run=nothing, fails_as=EventName.BALANCE_REJECTED)


def test_the_mailbox_hands_out_the_events_waiting_at_its_head_up_to_a_cap() -> None:
    created = Event(EventName.ORDER_CREATED, "o", "u", "i", 1, 1)
    two, one = HandleEvents((created, created)), HandleEvents((created,))
    call = Call(Request.GET_USER, {}, None)  # type: ignore[arg-type]
    mailbox = Mailbox()
    for message in (two, one, two, call, one):
        mailbox.put(Envelope(message))

    assert mailbox.take_events(4) == [two, one], "the next batch of two would pass the cap"
    assert mailbox.take_events(256) == [two], "a call keeps its place in line"
    assert mailbox.get().message is call
    assert mailbox.take_events(256) == [one]
    assert mailbox.empty()
