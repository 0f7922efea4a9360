"""A step that keeps failing is given up on: its event is kept as a dead letter, and a step that
can fail closes with its failure event, so the saga undoes what came before."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sagashop.errors import Conflict, NotFound
from sagashop.events import EventName
from tests.store.harness import Steps


def number(letter: dict[str, Any]) -> int:
    """The letter's id in its service's table, from the id the API shows (`user-12`)."""
    service, _, number = letter["id"].partition("-")
    assert service == letter["service"]
    return int(number)


async def test_giving_up_on_a_step_that_can_fail_closes_it_with_its_failure_event(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)

    failure = await steps.give_up("user", purchase.created, RuntimeError("disk on fire"))

    assert failure is not None
    assert failure.name is EventName.BALANCE_REJECTED
    assert failure.reason == "user failed: internal error (RuntimeError: disk on fire)"
    assert failure.causation_id == purchase.created.event_id
    [letter] = await steps.dead_letters("user", purchase.order_id)
    assert (letter["step"], letter["error"], letter["failures"]) == (
        "reserve",
        "RuntimeError: disk on fire",
        1,
    )
    assert letter["event"] == purchase.created.to_dict()
    assert letter["replayedAt"] is None
    assert letter["closedWith"] == "balance.rejected"
    assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.rejected")]
    assert await steps.unpublished("user", purchase.order_id) == [
        ((await steps.step_rows("user", purchase.order_id))[0].id, failure)
    ]


async def test_the_event_arriving_after_a_give_up_replays_the_failure_and_acts_not(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)
    failure = await steps.give_up("user", purchase.created, RuntimeError("boom"))

    again = await steps.take("user", purchase.created)
    given_up_again = await steps.give_up("user", purchase.created, RuntimeError("boom"))

    assert again == failure
    assert given_up_again == failure
    assert (await steps.holdings(purchase)).balance == 5_000
    [letter] = await steps.dead_letters("user", purchase.order_id)
    assert letter["failures"] == 1, "the step was closed: the second give-up only replays"


async def test_giving_up_on_a_step_that_cannot_fail_keeps_a_letter_and_emits_nothing(
    steps: Steps,
) -> None:
    purchase = await steps.purchase()
    spent = purchase.then(EventName.ORDER_COMPLETED)
    waiting = await steps.within(steps.logs["user"].dead_letters.count())

    outcome = await steps.give_up("user", spent, ValueError("bad row"))

    assert outcome is None
    assert await steps.taken("user", purchase.order_id) == []
    [letter] = await steps.dead_letters("user", purchase.order_id)
    assert letter["service"] == "user"
    assert letter["id"] == f"user-{number(letter)}"
    assert (letter["step"], letter["error"], letter["failures"]) == (
        "spend",
        "ValueError: bad row",
        1,
    )
    assert letter["closedWith"] is None
    assert await steps.within(steps.logs["user"].dead_letters.count()) == waiting + 1


async def test_a_letter_whose_step_closed_with_its_failure_is_neither_waiting_nor_replayed(
    steps: Steps,
) -> None:
    """The give-up cancelled the order and undid what came before: delivering the event again
    would only give the recorded failure again, so the letter is told 409 and stays as it is."""
    purchase = await steps.purchase(balance=5_000, price=1_000)
    letters = steps.logs["user"].dead_letters
    waiting = await steps.within(letters.count())
    await steps.give_up("user", purchase.created, RuntimeError("boom"))
    [letter] = await steps.dead_letters("user", purchase.order_id)

    with pytest.raises(Conflict, match=r"closed with balance\.rejected when given up"):
        await steps.within(letters.exhume(number(letter)))

    assert await steps.dead_letters("user", purchase.order_id) == [letter]
    assert await steps.within(letters.count()) == waiting


async def test_giving_up_twice_counts_the_failures_and_keeps_the_latest_error(
    steps: Steps,
) -> None:
    purchase = await steps.purchase()
    sold = purchase.then(EventName.INVENTORY_FILLED)

    await steps.give_up("item", sold, TimeoutError("slow disk"))
    await steps.give_up("item", sold, KeyError("lost"))

    [letter] = await steps.dead_letters("item", purchase.order_id)
    assert (letter["step"], letter["failures"], letter["error"]) == ("sell", 2, "KeyError: 'lost'")


async def test_exhuming_a_letter_gives_its_event_back_and_marks_it_replayed(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=4_000, price=1_000)
    spent = purchase.then(EventName.ORDER_COMPLETED)
    await steps.give_up("user", spent, RuntimeError("boom"))
    [letter] = await steps.dead_letters("user", purchase.order_id)

    exhumed = await steps.within(steps.logs["user"].dead_letters.exhume(number(letter)))

    assert exhumed == spent
    [replayed] = await steps.dead_letters("user", purchase.order_id)
    assert replayed["replayedAt"] is not None
    assert replayed["failures"] == 1
    # the replayed event takes the step it failed to take
    await steps.take("user", purchase.created)
    outcome = await steps.take("user", exhumed)
    assert outcome is not None
    assert outcome.name is EventName.BALANCE_SPENT
    assert await steps.held("user", purchase.order_id) == "confirmed"


async def test_failing_again_after_a_replay_clears_the_replayed_mark(steps: Steps) -> None:
    purchase = await steps.purchase()
    spent = purchase.then(EventName.ORDER_COMPLETED)
    await steps.give_up("user", spent, RuntimeError("first"))
    [letter] = await steps.dead_letters("user", purchase.order_id)
    await steps.within(steps.logs["user"].dead_letters.exhume(number(letter)))

    await steps.give_up("user", spent, RuntimeError("second"))

    [again] = await steps.dead_letters("user", purchase.order_id)
    assert (again["id"], again["failures"], again["error"]) == (
        letter["id"],
        2,
        "RuntimeError: second",
    )
    assert again["replayedAt"] is None


async def test_exhuming_a_letter_that_does_not_exist_is_not_found(steps: Steps) -> None:
    with pytest.raises(NotFound, match="no dead letter with id 987654321"):
        await steps.within(steps.logs["payment"].dead_letters.exhume(987_654_321))


async def test_two_replays_of_one_letter_at_once_deliver_it_once(steps: Steps) -> None:
    """Both ask while the letter waits; one statement each claims it, so one gets the event and
    the other is told it was replayed, whichever runs first."""
    purchase = await steps.purchase()
    spent = purchase.then(EventName.ORDER_COMPLETED)
    await steps.give_up("user", spent, RuntimeError("boom"))
    [letter] = await steps.dead_letters("user", purchase.order_id)
    letters = steps.logs["user"].dead_letters

    outcomes = await asyncio.gather(
        steps.within(letters.exhume(number(letter))),
        steps.within(letters.exhume(number(letter))),
        return_exceptions=True,
    )

    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["Conflict", "Event"]
    assert spent in outcomes
