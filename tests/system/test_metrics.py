"""`/metrics`, as Prometheus scrapes it: after one purchase completed and one cancelled by its
payment, the sagas, the steps of each service, the events on the bus and the loop's lag."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from sagashop.actors import SERVICE_NAMES
from tests.support import Shop, on_systems, started_shop

on_each_bus = on_systems("sqlite-pubsub", "sqlite-streams")


class Scrape:
    """The samples of one scrape of `/metrics`."""

    def __init__(self, samples: Iterable[Sample]) -> None:
        self.samples = list(samples)

    def value(self, name: str, **labels: str) -> float:
        [found] = [s.value for s in self.samples if s.name == name and s.labels == labels]
        return found

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` that carry these labels (and any others)."""
        return sum(s.value for s in self.matching(name, **labels))

    def matching(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self.samples if s.name == name and labels.items() <= s.labels.items()]


async def scrape(shop: Shop) -> Scrape:
    async with shop.client.request("GET", "/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    return Scrape(s for family in text_string_to_metric_families(text) for s in family.samples)


def bus_of(shop: Shop) -> str:
    assert shop.node is not None
    return shop.node.settings.bus


@pytest.fixture(scope="module")
async def scraped(shop: Shop) -> Scrape:
    """One purchase completed, then one declined by the payment mock, each settled."""
    user, item = await shop.new_user(), await shop.new_item()
    completed = await shop.buy(user, item)
    assert (await shop.settle(completed["id"]))["status"] == "COMPLETED"
    await shop.set_payment_failure_rate(1.0)
    try:
        declined = await shop.buy(user, item)
        assert (await shop.settle(declined["id"]))["status"] == "CANCELLED"
    finally:
        await shop.set_payment_failure_rate(0.0)
    return await scrape(shop)


@on_each_bus
async def test_sagas_are_counted_as_they_start_and_end(scraped: Scrape) -> None:
    assert scraped.value("sagashop_sagas_started_total") == 2
    assert scraped.value("sagashop_sagas_completed_total") == 1
    cancelled = scraped.matching("sagashop_sagas_cancelled_total")
    assert {s.labels["failed_at"]: s.value for s in cancelled if s.value} == {"payment": 1}
    for outcome in ("completed", "cancelled"):
        assert scraped.value("sagashop_saga_duration_seconds_count", outcome=outcome) == 1
        assert scraped.value("sagashop_saga_duration_seconds_sum", outcome=outcome) > 0


@on_each_bus
async def test_each_service_reports_its_step_latency_and_mailbox(scraped: Scrape) -> None:
    for service in SERVICE_NAMES:
        assert scraped.total("sagashop_step_seconds_count", service=service) >= 1, service
        assert scraped.total("sagashop_steps_total", service=service) >= 1, service
        assert scraped.value("sagashop_mailbox_events", service=service) >= 0


@on_each_bus
async def test_events_are_counted_the_way_they_travel(shop: Shop, scraped: Scrape) -> None:
    """One process runs every service: every event goes to its own services, none on the bus."""
    for name in ("sagashop_events_published_total", "sagashop_events_received_total"):
        assert scraped.total(name, transport="local") > 0, name
        assert scraped.total(name, transport=bus_of(shop)) == 0, name
    two_orders = {"transport": "local", "event": "order.created"}
    assert scraped.value("sagashop_events_published_total", **two_orders) >= 2
    assert scraped.value("sagashop_events_received_total", **two_orders) >= 2


@on_each_bus
async def test_the_process_reports_its_loop_lag_and_outbox(scraped: Scrape) -> None:
    lag = scraped.value("sagashop_loop_lag_seconds")
    assert 0 <= lag <= scraped.value("sagashop_loop_lag_max_seconds")
    assert scraped.value("sagashop_outbox_backlog") >= 0


@on_each_bus
async def test_the_front_door_counts_its_requests_by_route_method_and_status(
    scraped: Scrape,
) -> None:
    """By the route as declared, never the path: one series however many orders there are."""
    placed = {"route": "/orders", "method": "POST", "status": "201"}
    assert scraped.value("sagashop_http_requests_total", **placed) == 2
    timelines = scraped.matching(
        "sagashop_http_requests_total", route="/orders/{order_id}/timeline"
    )
    assert timelines, "the settling reads, under their route template"
    routes = {s.labels["route"] for s in scraped.matching("sagashop_http_requests_total")}
    assert not [route for route in routes if re.search(r"[0-9a-f]{8}-[0-9a-f]{4}", route)]
    seconds = {"route": "/orders", "method": "POST"}
    assert scraped.value("sagashop_http_request_duration_seconds_count", **seconds) == 2
    assert scraped.value("sagashop_http_requests_in_flight") == 1, "the scrape itself"
    (build,) = scraped.matching("sagashop_build_info")
    assert (build.value, build.labels["version"]) == (1, version("sagashop"))
    assert scraped.value("sagashop_sagas_in_flight") == 0, "both sagas ended here"


DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def series_used() -> dict[str, set[str]]:
    """Each metric the dashboard and the alert rules read, by the file that reads it."""
    dashboard = json.loads((DEPLOY / "grafana" / "sagashop.json").read_text())
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())
    expressions = {
        "grafana/sagashop.json": [t["expr"] for p in dashboard["panels"] for t in p["targets"]],
        "prometheus/alerts.yaml": [r["expr"] for g in rules["groups"] for r in g["rules"]],
    }
    return {
        where: {name for expr in exprs for name in re.findall(r"\bsagashop_\w+", expr)}
        for where, exprs in expressions.items()
    }


@on_systems("sqlite-pubsub")
async def test_every_series_the_dashboard_and_the_alerts_read_is_there_after_a_purchase(
    scraped: Scrape,
) -> None:
    there = {sample.name for sample in scraped.samples}
    for where, names in series_used().items():
        assert names, where
        assert names - there == set(), f"{where} reads series /metrics does not have"


@on_systems("sqlite-pubsub")
async def test_two_systems_in_one_process_count_apart(shop: Shop, scraped: Scrape) -> None:
    """A front door of its own (one Store per process: it runs no service) places a purchase:
    the saga is counted where the order service runs, not by the door."""
    assert shop.node is not None
    door_settings = replace(shop.node.settings, services=())
    async with started_shop(door_settings) as door:
        user, item = await door.new_user(), await door.new_item()
        order = await door.buy(user, item)
        await door.settle(order["id"])

        theirs = await scrape(door)

    ours = await scrape(shop)
    assert ours.value("sagashop_sagas_started_total") == 3
    assert ours.value("sagashop_sagas_completed_total") == 2
    assert theirs.value("sagashop_sagas_started_total") == 0
    assert theirs.value("sagashop_sagas_completed_total") == 0
    assert theirs.total("sagashop_events_received_total") == 0
    assert ours.total("sagashop_events_received_total") > scraped.total(
        "sagashop_events_received_total"
    )
