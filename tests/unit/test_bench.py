"""The bench's pure parts: what a scenario buys, how the figures are summed up, and which
invariants a run broke. No Redis, no database, no HTTP."""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sagashop import config
from sagashop.actors.inventory import BAG_SLOTS
from sagashop.bench import run as bench
from sagashop.bench.cpu import CpuSample, CpuSpent, metric_sum
from sagashop.bench.figures import Figures, Vitals, percentile, reason_summary, vitals_of
from sagashop.bench.load import LOST, REFUSED, Outcome, settled_audit
from sagashop.bench.scenarios import (
    PURCHASES_PER_USER,
    SOLD_OUT,
    Plan,
    make_plan,
    users_for,
)

GOOD_AUDIT = {"ok": True, "counts": {"orders": 3}, "violations": []}
NO_CPU = CpuSpent(None, None)
DECLINED = "payment: declined by the mock provider"


def figures(
    plan: Plan,
    outcomes: list[Outcome],
    audit: dict[str, Any] | None = None,
    seconds: float = 2.0,
) -> Figures:
    return Figures(plan, 1, outcomes, seconds, audit or GOOD_AUDIT, 0.1, Vitals(), NO_CPU)


def completed(seconds: float = 0.1) -> Outcome:
    return Outcome("COMPLETED", None, seconds)


def cancelled(reason: str, seconds: float = 0.1) -> Outcome:
    return Outcome("CANCELLED", reason, seconds)


def test_percentiles_are_values_that_were_measured_by_nearest_rank() -> None:
    ordered = [float(n) for n in range(1, 101)]
    assert [percentile(ordered, share) for share in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_uniform_spreads_purchases_over_enough_users_that_no_bag_fills() -> None:
    assert PURCHASES_PER_USER < BAG_SLOTS
    assert [users_for(n) for n in (1, 15, 16, 2_000)] == [1, 1, 2, 134]
    plan = make_plan("uniform", purchases=2_000)
    assert (plan.users, plan.items, plan.stock) == (134, 10, 2_000)
    orders = plan.orders([f"u{n}" for n in range(plan.users)], ["a", "b"], random.Random(1))
    per_user = Counter(order["userId"] for order in orders)
    assert len(orders) == 2_000
    assert max(per_user.values()) <= PURCHASES_PER_USER
    assert {order["quantity"] for order in orders} == {1}


def test_every_user_can_afford_every_purchase_they_place() -> None:
    plan = make_plan("uniform", purchases=100, users=4)
    prices = [body["price"] for body in plan.item_bodies(random.Random(3))]
    users = plan.user_bodies(prices)
    assert len(users) == 4
    assert {user["balance"] for user in users} == {max(prices) * 25}


def test_the_bench_chooses_items_the_same_way_for_the_same_seed() -> None:
    plan = make_plan("uniform", purchases=50)

    def choices(seed: int) -> list[Any]:
        rng = random.Random(seed)
        bodies = plan.item_bodies(rng)
        return [bodies, plan.orders(["u"] * plan.users, ["a", "b", "c"], rng)]

    assert choices(1) == choices(1)
    assert choices(1) != choices(2)


def test_a_flash_sale_is_many_users_rushing_one_item() -> None:
    plan = make_plan("flash-sale")
    assert (plan.purchases, plan.users, plan.items, plan.stock, plan.per_user) == (
        5_000,
        1_000,
        1,
        100,
        5,
    )
    assert [body["stock"] for body in plan.item_bodies(random.Random(1))] == [100]
    assert make_plan("flash-sale", purchases=200, users=50, stock=10).stock == 10


@pytest.mark.parametrize(
    ("scenario", "figures_given", "complaint"),
    [
        ("flash-sale", {"stock": 11, "purchases": 10}, "must not exceed --purchases"),
        ("flash-sale", {"purchases": 210, "users": 10}, "would fill a bag"),
        ("flash-sale", {"items": 3}, "one item"),
        ("uniform", {"purchases": 0}, "--purchases must be at least 1"),
        ("uniform", {"concurrency": 0}, "--concurrency must be at least 1"),
        ("uniform", {"stock": -1}, "--stock must be between"),
        ("rush", {}, "no scenario 'rush'"),
    ],
)
def test_figures_that_cannot_make_the_scenario_are_refused(
    scenario: str, figures_given: dict[str, int], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        make_plan(scenario, **figures_given)


def test_reasons_are_counted_without_their_figures() -> None:
    assert reason_summary("item: out of stock: 0 left, 1 requested") == "item: out of stock"
    assert reason_summary("user: balance too low: has 5, needs 9") == "user: balance too low"
    assert reason_summary(DECLINED) == DECLINED


def test_a_clean_uniform_run_breaks_no_invariant_and_counts_both_rates() -> None:
    outcomes = [completed(0.1), completed(0.3), cancelled(DECLINED, 0.2)]
    run = figures(make_plan("uniform", purchases=3), outcomes, seconds=2.0)
    assert run.failures() == []
    assert run.statuses == {"COMPLETED": 2, "CANCELLED": 1}
    assert run.reasons == {DECLINED: 1}
    assert (run.per_second("COMPLETED"), run.per_second("COMPLETED", "CANCELLED")) == (1.0, 1.5)
    assert run.latency_ms == {"p50": 200.0, "p95": 300.0, "p99": 300.0}


def test_a_failed_audit_fails_the_run_naming_its_violations() -> None:
    audit = {"ok": False, "counts": {}, "violations": ["stock: item x: 1 missing"]}
    run = figures(make_plan("uniform", purchases=1), [completed()], audit)
    assert run.failures() == ["audit: 1 violation(s): stock: item x: 1 missing"]


def test_orders_still_in_flight_when_the_audit_gave_up_waiting_fail_the_run() -> None:
    audit = {"ok": True, "counts": {"orders": 1, "in flight": 1}, "violations": []}
    run = figures(make_plan("uniform", purchases=1), [completed()], audit)
    assert run.failures() == ["audit: 1 order(s) still in flight, their sagas unsettled"]


def test_lost_orders_and_http_errors_fail_the_run() -> None:
    outcomes = [
        completed(),
        Outcome(LOST, errors=("GET /orders/o: answered 503",), refused_with=(503,)),
        Outcome(REFUSED, errors=("POST /orders 503: busy",), refused_with=(503,)),
    ]
    run = figures(make_plan("uniform", purchases=3), outcomes)
    failures = run.failures()
    assert len(failures) == 2
    assert failures[0].startswith("1 order(s) lost")
    assert failures[1] == (
        "2 HTTP error(s) (503: 2), 1 order(s) refused: GET /orders/o: answered 503"
    )
    assert run.to_dict()["errors"]["byStatus"] == {"503": 2}


def test_a_read_refused_on_the_way_fails_the_run_even_if_the_order_ended() -> None:
    """A rate limit's 429s on the reads are refusals like any other, named by status."""
    errors = ("GET /orders/o: answered 429: slow down", "GET /orders/o: timed out")
    outcomes = [Outcome("COMPLETED", None, 0.1, errors, refused_with=(429,))]
    assert figures(make_plan("uniform", purchases=1), outcomes).failures() == [
        "2 HTTP error(s) (429: 1), 0 order(s) refused: GET /orders/o: answered 429: slow down"
    ]


async def test_the_audit_is_asked_again_after_a_429_as_its_retry_after_says() -> None:
    """A server with a rate limit counts the bench's own requests: the audit waits its turn."""
    asked = 0

    async def audit(_request: web.Request) -> web.Response:
        nonlocal asked
        asked += 1
        if asked < 3:
            return web.json_response({}, status=429, headers={"Retry-After": "0"})
        return web.json_response({"ok": True, "counts": {"in flight": 0}})

    app = web.Application()
    app.router.add_get("/audit", audit)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        report, _seconds = await settled_audit(http, str(server.make_url("")).rstrip("/"), 5)
    assert (report["ok"], asked) == (True, 3)


def test_a_flash_sale_must_sell_exactly_its_stock_and_cancel_the_rest_for_lack_of_it() -> None:
    plan = make_plan("flash-sale", purchases=5, users=5, stock=2)
    sold_out = cancelled(SOLD_OUT)
    assert figures(plan, [completed(), completed(), sold_out, sold_out, sold_out]).failures() == []

    undersold = figures(plan, [completed(), cancelled(DECLINED), sold_out, sold_out, sold_out])
    assert undersold.failures() == [
        "flash sale: 1 completed, not exactly the stock of 2",
        f"flash sale: 1 order(s) not cancelled with {SOLD_OUT!r}: {{{DECLINED!r}: 1}}",
    ]
    oversold = figures(plan, [completed()] * 3 + [sold_out] * 2)
    assert oversold.failures() == ["flash sale: 3 completed, not exactly the stock of 2"]


def test_the_sold_out_reason_is_the_item_services_refusal_of_the_last_unit() -> None:
    assert SOLD_OUT.startswith("item: out of stock")
    assert reason_summary(SOLD_OUT) == "item: out of stock"


def test_vitals_sum_the_peak_memory_and_take_the_longest_lag_over_the_processes() -> None:
    new = [
        {"loop": {"maxLagMs": 3.5}, "memory": {"rssBytes": 10, "peakRssBytes": 100}},
        {"loop": {"maxLagMs": 9.0}, "memory": {"rssBytes": None, "peakRssBytes": 200}},
    ]
    assert vitals_of(new, []) == Vitals(300, 9.0)
    assert vitals_of(new, [100, 50, 25]) == Vitals(175, 9.0), "every process the bench started"
    old = [{"status": "ok"}, {"status": "ok"}]
    assert vitals_of(old, []) == Vitals(None, None)
    assert vitals_of(old, [100, 50]) == Vitals(150, None)
    assert vitals_of(old, [100, None]) == Vitals(None, None)


def test_the_json_holds_the_figures_and_the_verdict() -> None:
    run = figures(make_plan("uniform", purchases=2), [completed(), Outcome(LOST)])
    shown = json.loads(json.dumps(run.to_dict()))
    assert shown["statuses"] == {"COMPLETED": 1, "LOST": 1}
    assert shown["latencyMs"] == {"p50": 100.0, "p95": 100.0, "p99": 100.0}
    assert shown["audit"]["ok"] is True
    assert (shown["peakRssBytes"], shown["maxLoopLagMs"]) == (None, None)
    assert shown["ok"] is False
    assert shown["failures"][0].startswith("1 order(s) lost")


def test_the_cpu_a_purchase_costs_is_the_servers_and_redis_over_the_purchases_placed() -> None:
    spent = CpuSpent.between(CpuSample(10.0, 2.0), CpuSample(10.5, 2.1))
    run = Figures(
        make_plan("uniform", purchases=2),
        1,
        [completed(), Outcome(LOST)],
        1.0,
        GOOD_AUDIT,
        0.1,
        Vitals(),
        spent,
    )
    assert run.cpu_ms_per_purchase() == pytest.approx(
        {"server": 300.0, "redis": 50.0, "broker": None}
    )
    assert json.loads(json.dumps(run.to_dict()))["cpuMsPerPurchase"] == {
        "server": 300.0,
        "redis": 50.0,
        "broker": None,
    }
    unknown = CpuSpent.between(CpuSample(None, 2.0), CpuSample(10.5, 2.1))
    assert (unknown.servers, unknown.total) == (None, None)
    assert CpuSpent.between(CpuSample(1.0, None), CpuSample(1.5, None)).total == 0.5


def test_a_metric_is_summed_over_its_labels_and_no_other_metric() -> None:
    text = (
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
        "process_cpu_seconds_total 12.5\n"
        'sagashop_steps_total{service="user",step="reserve"} 3.0\n'
        'sagashop_steps_total{service="item",step="sell"} 4.0\n'
        'sagashop_steps_total_created{service="item",step="sell"} 1.7e9\n'
    )
    assert metric_sum(text, "process_cpu_seconds_total") == 12.5
    assert metric_sum(text, "sagashop_steps_total") == 7.0
    assert metric_sum(text, "sagashop_sagas_started_total") is None


def run_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    bench.add_arguments(parser)
    args = parser.parse_args(argv)
    return bench.command(config.load(args, {}, bench.DEFAULTS), args)


def test_a_flash_sale_with_declined_payments_is_refused_before_anything_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_command(["--scenario", "flash-sale", "--payment-failure-rate", "0.1"]) == 2
    assert "--payment-failure-rate 0" in capsys.readouterr().err
    assert run_command(["--poll-every", "0"]) == 2
    assert "--poll-every" in capsys.readouterr().err


def test_the_brokers_cpu_is_counted_apart_from_the_servers() -> None:
    """`--broker-pid`: RabbitMQ's CPU per purchase beside the server's, which stays comparable
    with runs on Redis (the embedded Redis the system still uses is the server's)."""
    spent = CpuSpent.between(CpuSample(10.0, 2.0, 100.0), CpuSample(10.5, 2.1, 100.4))
    assert spent.total == pytest.approx(0.6)
    run = Figures(
        make_plan("uniform", purchases=2),
        1,
        [completed(), completed()],
        1.0,
        GOOD_AUDIT,
        0.1,
        Vitals(),
        spent,
    )
    assert run.cpu_ms_per_purchase()["broker"] == pytest.approx(200.0)
    assert json.loads(json.dumps(run.to_dict()))["cpuMsPerPurchase"]["broker"] == 200.0
