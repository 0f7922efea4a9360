"""The chaos run, as a test: 2,000 purchases over four processes while processes are killed
with SIGKILL and restarted, Redis restarts, the bus loses 2% of events and doubles 5%, and
payment declines 20%; then the same with every service in a process of its own (order and
payment twice) and a bad link to Redis and PostgreSQL, on PostgreSQL with Streams (a PostgreSQL
of the run's own, restarted as after a crash), on SQLite with Pub/Sub, and on SQLite with
RabbitMQ (a RabbitMQ of the run's own, restarted, and a bad link to it too). Every order must
end within its deadline and the audit find nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sagashop.chaos import run as chaos
from sagashop.config import Settings
from tests.support import own_postgres_or_skip, own_rabbit_or_skip

PLAN = chaos.Plan(purchases=2_000, kills=4)
EVERYTHING = chaos.Plan(purchases=2_000, kills=6, layout="spread", bad_link=1)


def chaos_settings(bus: str) -> Settings:
    """The faults of the bus and of payment, and a short deadline, as `run.py chaos` has them."""
    return Settings(
        bus=bus,
        fault_drop=0.02,
        fault_duplicate=0.05,
        payment_failure_rate=0.2,
        saga_deadline=20.0,
        nudge_after=2.0,
        sweep_every=0.5,
    )


def assert_all_ended_and_the_books_balance(outcome: chaos.Outcome, plan: chaos.Plan) -> None:
    print("\n" + "\n".join(outcome.lines()))
    assert not outcome.timed_out, f"longer than {plan.time_limit}s"
    assert outcome.purchases == plan.purchases
    assert sum(outcome.statuses.values()) == plan.purchases, "one order per purchase"
    assert set(outcome.statuses) <= {"COMPLETED", "CANCELLED"}
    assert (outcome.kills, outcome.redis_restarts) == (plan.kills, 1)
    assert outcome.dropped > 0
    assert outcome.duplicated > 0
    assert outcome.past_deadline == 0
    assert outcome.audit["ok"], outcome.audit["violations"]
    assert outcome.audit["counts"]["settled"] == plan.purchases
    assert outcome.clean_exits


@pytest.mark.chaos
@pytest.mark.parametrize("bus", ["pubsub", "streams"])  # RabbitMQ: with every fault, below
async def test_no_purchase_is_lost_and_nothing_is_created_or_destroyed_under_chaos(
    bus: str, tmp_path: Path
) -> None:
    outcome = await chaos.run(PLAN, chaos_settings(bus), tmp_path)
    assert_all_ended_and_the_books_balance(outcome, PLAN)


@pytest.mark.chaos
@pytest.mark.parametrize(
    ("backend", "bus"),
    [
        pytest.param("postgres", "streams", marks=pytest.mark.postgres),
        ("sqlite", "pubsub"),
        pytest.param("sqlite", "rabbitmq", marks=pytest.mark.rabbitmq),
    ],
)
async def test_every_fault_at_once_over_a_process_per_service(
    backend: str, bus: str, tmp_path: Path
) -> None:
    """Each service in its own process, the order and payment services twice; while purchases
    go on, processes are killed, Redis restarts, its link delays every chunk, drops connections
    and is cut for 2 s, PostgreSQL (the run's own) restarts as after a crash and its link is cut
    for 3 s, RabbitMQ (the run's own) restarts and its link delays, drops and is cut for 2 s;
    the bus loses and doubles events."""
    plan = EVERYTHING
    if backend == "postgres":
        own_postgres_or_skip()
        plan = replace(EVERYTHING, own_postgres=1)
    rabbitmq = bus == "rabbitmq"
    if rabbitmq:
        own_rabbit_or_skip()
    outcome = await chaos.run(plan, chaos_settings(bus), tmp_path)

    assert_all_ended_and_the_books_balance(outcome, plan)
    cuts = (outcome.redis_cuts, outcome.broker_cuts, outcome.database_cuts)
    assert cuts == (1, int(rabbitmq), int(backend == "postgres"))
    assert outcome.links_dropped == 4 + 2 * rabbitmq, "four of Redis', two of RabbitMQ's"
    assert outcome.database_restarts == (1 if backend == "postgres" else 0)
    assert outcome.broker_restarts == int(rabbitmq)
