"""What the order service counts of its sagas: few labels whatever the reasons say, and a
duration only for a saga whose start this process saw."""

from __future__ import annotations

import pytest

from sagashop.actors import SERVICE_NAMES
from sagashop.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics(clock: Clock) -> Metrics:
    return Metrics("pubsub", SERVICE_NAMES, saga_deadline=30.0, clock=clock)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("reason", "failed_at"),
    [
        ("payment: declined by the mock provider", "payment"),
        ("user: balance too low: has 500, needs 1000", "user"),
        ("item failed: internal error (ZeroDivisionError: boom)", "item"),
        ("inventory: bag is full: 20 free slots, 21 needed", "inventory"),
        ("an order id 8c1e…: no service named", "other"),
        (None, "other"),
    ],
)
def test_a_cancellation_is_labelled_by_the_service_its_reason_names_first(
    metrics: Metrics, reason: str | None, failed_at: str
) -> None:
    metrics.sagas.cancelled("o-1", reason)

    assert value(metrics, "sagashop_sagas_cancelled_total", failed_at=failed_at) == 1


def test_a_saga_past_its_deadline_is_cancelled_at_the_deadline(metrics: Metrics) -> None:
    metrics.sagas.expired("o-1")

    assert value(metrics, "sagashop_sagas_cancelled_total", failed_at="deadline") == 1


def test_a_saga_is_timed_from_its_start_to_its_end(metrics: Metrics, clock: Clock) -> None:
    metrics.sagas.started("o-1")
    clock.now += 0.7
    metrics.sagas.completed("o-1")

    assert value(metrics, "sagashop_sagas_started_total") == 1
    assert value(metrics, "sagashop_sagas_completed_total") == 1
    assert value(metrics, "sagashop_saga_duration_seconds_sum", outcome="completed") == (
        pytest.approx(0.7)
    )
    assert (
        value(metrics, "sagashop_saga_duration_seconds_bucket", outcome="completed", le="0.5") == 0
    )
    assert (
        value(metrics, "sagashop_saga_duration_seconds_bucket", outcome="completed", le="1.0") == 1
    )


def test_a_saga_started_elsewhere_is_counted_but_not_timed(metrics: Metrics) -> None:
    metrics.sagas.cancelled("started-in-another-process", "payment: declined")

    assert value(metrics, "sagashop_sagas_cancelled_total", failed_at="payment") == 1
    assert value(metrics, "sagashop_saga_duration_seconds_count", outcome="cancelled") == 0


def test_a_start_long_past_the_deadline_is_forgotten(metrics: Metrics, clock: Clock) -> None:
    """Its saga ended in another process: keeping it would grow with history."""
    metrics.sagas.started("ended-elsewhere")
    clock.now += 61.0
    metrics.sagas.started("fresh")
    metrics.sagas.completed("ended-elsewhere")
    metrics.sagas.completed("fresh")

    assert value(metrics, "sagashop_sagas_completed_total") == 2
    assert value(metrics, "sagashop_saga_duration_seconds_count", outcome="completed") == 1


def test_two_nodes_in_one_process_count_apart(clock: Clock) -> None:
    first, second = (Metrics("pubsub", SERVICE_NAMES, 30.0, clock) for _ in range(2))

    first.sagas.started("o-1")

    assert value(first, "sagashop_sagas_started_total") == 1
    assert value(second, "sagashop_sagas_started_total") == 0
