"""The claim on (order, step) is the first write of a step's transaction, so the unique
constraint decides between two deliveries racing for one step before either acts; whatever a
step wrote goes with it when it fails."""

from __future__ import annotations

import asyncio

import pytest

from sagashop.actors.user import reserve_balance
from sagashop.events import Event, EventName
from sagashop.saga import step
from sagashop.store.errors import StoreConflict
from sagashop.store.reservations import ReservationState
from sagashop.store.user import BalanceReservation
from tests.store.harness import Steps


async def test_two_deliveries_racing_for_one_step_act_once_and_agree(steps: Steps) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)
    user = steps.logs["user"]
    acting, release = asyncio.Event(), asyncio.Event()
    actions = 0

    async def reserve() -> Event | None:
        nonlocal actions
        actions += 1
        acting.set()
        await release.wait()  # hold the claim open while the other delivery tries its own
        return await reserve_balance(purchase.created)

    def deliver() -> asyncio.Task[Event | None]:
        return steps.spawn(user.record(purchase.order_id, "reserve", "order.created", reserve))

    first, second = deliver(), deliver()
    await asyncio.wait_for(acting.wait(), timeout=10)
    await steps.others_wait_for_a_lock()
    # neither has finished: one holds its claim open, the other waits for its commit
    assert not first.done()
    assert not second.done()
    release.set()
    outcomes = await asyncio.gather(first, second)

    assert actions == 1
    assert outcomes[0] is not None
    assert outcomes[0].name is EventName.BALANCE_RESERVED
    assert outcomes[1] == outcomes[0], "the loser replays the winner's outcome"
    assert (await steps.holdings(purchase)).balance == 4_000
    assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.reserved")]


async def test_a_conflict_inside_a_step_is_raised_for_a_retry_and_claims_nothing(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)
    await steps.take("user", purchase.created)

    async def hold_again() -> Event | None:
        await BalanceReservation.create(  # the order has its row already: a unique violation
            order_id=purchase.order_id,
            state=ReservationState.RESERVED,
            user_id=purchase.user_id,
            amount=1,
        )
        return purchase.then(EventName.BALANCE_RESERVED)

    with pytest.raises(StoreConflict):
        await steps.within(
            steps.logs["user"].record(purchase.order_id, "again", "order.created", hold_again)
        )

    assert await steps.taken("user", purchase.order_id) == [("reserve", "balance.reserved")]
    assert (await steps.holdings(purchase)).balance == 4_000


async def test_a_step_emitting_an_undeclared_event_fails_and_its_writes_roll_back(
    steps: Steps,
) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)

    async def reserve_and_say_spent(event: Event) -> Event:
        await reserve_balance(event)  # takes the money, holds it...
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
    # nothing was claimed: the real step takes it afterwards
    outcome = await steps.take("user", purchase.created)
    assert outcome is not None
    assert outcome.name is EventName.BALANCE_RESERVED


async def test_a_step_that_raises_leaves_no_trace_and_can_be_taken_again(steps: Steps) -> None:
    purchase = await steps.purchase(balance=5_000, price=1_000)

    async def reserve_then_crash(event: Event) -> Event:
        await reserve_balance(event)
        raise ConnectionResetError("lost the socket mid-step")

    crashing = step("reserve", on=[EventName.ORDER_CREATED], run=reserve_then_crash)

    with pytest.raises(ConnectionResetError):
        await steps.take("user", purchase.created, crashing)

    assert await steps.taken("user", purchase.order_id) == []
    assert (await steps.holdings(purchase)).balance == 5_000
    assert await steps.take("user", purchase.created) is not None
    assert (await steps.holdings(purchase)).balance == 4_000
