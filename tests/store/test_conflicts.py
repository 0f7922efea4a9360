"""Whatever a step wrote goes with it when its batch fails: a conflict inside a step, an event it
does not declare, an exception. Nothing is recorded as taken, so it can be taken again.

(Two writers racing for the same step or rows: `test_races.py`.)"""

from __future__ import annotations

import pytest

from sagashop.actors.user import reserve_balance
from sagashop.events import Event, EventName
from sagashop.saga import step
from sagashop.store.book import Book, Keyed
from sagashop.store.errors import StoreConflict, StoreUnavailable
from sagashop.store.reservations import ReservationState
from sagashop.store.user import BalanceReservation
from tests.store.harness import Steps

UNREAD_HOLDS = Keyed(BalanceReservation, by=("order_id",), read=False)
"""The user's holds, written without being read first: the database alone knows a row is there."""


async def test_a_conflict_inside_a_step_is_raised_for_a_retry_and_takes_nothing(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)
    await steps.take("user", purchase.created)

    def hold_again(event: Event, book: Book) -> Event:
        book.insert(
            UNREAD_HOLDS, event, state=ReservationState.RESERVED, user_id=event.user_id, amount=1
        )  # the order has its row already: a unique violation
        return event.follow(EventName.BALANCE_RESERVED)

    again = step(
        "again", on=[EventName.ORDER_CREATED], run=hold_again, emits=[EventName.BALANCE_RESERVED]
    )
    log = steps.logs["user"]
    log.tables = (*log.tables, UNREAD_HOLDS)
    try:
        with pytest.raises(StoreConflict):
            await steps.take("user", purchase.created, again)
    finally:
        log.tables = log.tables[:-1]

    assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.reserved")]
    assert (await steps.holdings(purchase)).balance == 4_000


async def test_a_step_emitting_an_undeclared_event_fails_and_its_writes_roll_back(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)

    def reserve_and_say_spent(event: Event, book: Book) -> Event:
        reserve_balance(event, book)  # takes the money, holds it...
        return event.follow(EventName.BALANCE_SPENT)  # ...and emits what it does not declare

    rogue = step(
        "reserve",
        on=[EventName.ORDER_CREATED],
        run=reserve_and_say_spent,
        emits=[EventName.BALANCE_RESERVED, EventName.BALANCE_REJECTED],
    )

    with pytest.raises(TypeError, match=r"user\.reserve emitted undeclared balance\.spent"):
        await steps.take("user", purchase.created, rogue)

    assert await steps.taken("user", purchase.order_id) == []
    assert (await steps.holdings(purchase)).balance == 5_000
    assert await steps.held("user", purchase.order_id) is None
    # nothing was recorded as taken: the real step takes it afterwards
    outcome = await steps.take("user", purchase.created)
    assert outcome is not None
    assert outcome.name is EventName.BALANCE_RESERVED


async def test_a_step_that_raises_leaves_no_trace_and_can_be_taken_again(steps: Steps) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)

    def reserve_then_crash(event: Event, book: Book) -> Event:
        reserve_balance(event, book)
        raise ConnectionResetError("lost the socket mid-step")

    crashing = step("reserve", on=[EventName.ORDER_CREATED], run=reserve_then_crash)

    with pytest.raises(StoreUnavailable) as raised:  # the store's connection, lost: retried
        await steps.take("user", purchase.created, crashing)
    assert isinstance(raised.value.__cause__, ConnectionResetError)

    assert await steps.taken("user", purchase.order_id) == []
    assert (await steps.holdings(purchase)).balance == 5_000
    assert await steps.take("user", purchase.created) is not None
    assert (await steps.holdings(purchase)).balance == 4_000
