"""With `--log-steps on`, every saga step a service takes is one log line at INFO, and in the JSON
format that line carries the step's facts as fields: order_id, event_id, service, step,
outcome, and the id of the HTTP request that started the purchase. Every request is one line
at INFO with its method, route, status, duration and id, the id given back on the answer."""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any
from uuid import UUID

import pytest

from sagashop.actors import SERVICE_NAMES, SERVICES
from sagashop.events import Event
from sagashop.logs import JsonFormatter
from sagashop.saga import Service
from sagashop.saga.declare import StepAction
from sagashop.store.book import Book
from tests.support import Shop, eventually, make_settings, started_shop

FIELDS = ("order_id", "event_id", "service", "step", "outcome", "request_id")
CURSED: set[str] = set()
"""Items the item service's reserve step crashes on, so that it is given up on."""


def crashing_on_cursed(service: Service) -> Service:
    """The service, its reserve step crashing on cursed items."""

    def wrapped(run: StepAction) -> StepAction:
        def run_unless_cursed(event: Event, book: Book) -> Event | None:
            if event.item_id in CURSED:
                raise RuntimeError("simulated bug")
            return run(event, book)

        return run_unless_cursed

    steps = tuple(
        replace(s, run=wrapped(s.run)) if s.name == "reserve" else s for s in service.steps
    )
    return replace(service, steps=steps)


@pytest.fixture(scope="module")
async def shop(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shop]:
    """The system on SQLite and Pub/Sub: the line is written where every step is taken, whatever
    the database or the bus."""
    catalogue = [crashing_on_cursed(s) if s.name == "item" else s for s in SERVICES]
    settings = make_settings(redis_url, tmp_path_factory.mktemp("data"), None, log_steps=True)
    async with started_shop(settings, catalogue) as started:
        yield started


@pytest.fixture
def step_lines(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """The JSON lines sagashop logs at INFO, as `--log-level INFO` has them."""
    caplog.set_level(logging.INFO, logger="sagashop")  # undone after the test
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("sagashop").addHandler(handler)
    yield out
    logging.getLogger("sagashop").removeHandler(handler)


def steps_logged(lines: io.StringIO, order_id: str) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in lines.getvalue().splitlines()]
    return [e for e in entries if e.get("order_id") == order_id and "step" in e]


async def test_each_step_taken_is_one_json_line_with_its_facts(
    shop: Shop, step_lines: io.StringIO
) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    order_id = (await shop.buy(user, item))["id"]
    timeline = (await shop.settle(order_id))["steps"]
    taken = Counter((s["service"], s["step"], s["event"] or "nothing") for s in timeline)

    def firsts(entries: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
        return Counter(
            (e["service"], e["step"], e["outcome"])
            for e in entries
            if e["outcome"] != "already taken"  # a delivery repeated: logged, never retaken
        )

    async def logged() -> list[dict[str, Any]]:
        return steps_logged(step_lines, order_id)

    entries = await eventually(logged, lambda found: firsts(found) == taken, within=10)

    assert ("user", "reserve", "balance.reserved") in taken
    for entry in entries:
        assert entry["level"] == "INFO"
        assert entry["logger"] == f"sagashop.{entry['service']}"
        assert set(FIELDS) <= set(entry)
        handled_a_command = (entry["service"], entry["step"]) == ("order", "create")
        assert (entry["event_id"] is None) == handled_a_command
        if not handled_a_command:
            UUID(entry["event_id"])


async def test_a_step_given_up_on_logs_that_it_failed(shop: Shop, step_lines: io.StringIO) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    CURSED.add(item)
    order_id = (await shop.buy(user, item))["id"]
    assert (await shop.settle(order_id))["status"] == "CANCELLED"

    async def item_lines() -> list[dict[str, Any]]:
        return [e for e in steps_logged(step_lines, order_id) if e["service"] == "item"]

    (entry,) = await eventually(item_lines, bool, within=10)
    assert (entry["step"], entry["outcome"]) == ("reserve", "failed")


def http_lines(lines: io.StringIO) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in lines.getvalue().splitlines()]
    return [e for e in entries if e["logger"] == "sagashop.http"]


async def test_a_request_id_sent_names_the_request_and_every_step_of_its_purchase(
    shop: Shop, step_lines: io.StringIO
) -> None:
    user, item = await shop.new_user(), await shop.new_item()
    body = {"userId": user, "itemId": item, "quantity": 1}
    async with shop.client.post("/orders", json=body, headers={"X-Request-Id": "rq-42"}) as sent:
        assert sent.status == 201
        assert sent.headers["X-Request-Id"] == "rq-42"
        order_id = (await sent.json())["id"]
    timeline = (await shop.settle(order_id))["steps"]

    async def logged() -> list[dict[str, Any]]:
        return steps_logged(step_lines, order_id)

    entries = await eventually(logged, lambda found: len(found) >= len(timeline), within=10)
    assert {e["service"] for e in entries} == set(SERVICE_NAMES)
    assert {e["request_id"] for e in entries} == {"rq-42"}
    (line,) = [e for e in http_lines(step_lines) if e["request_id"] == "rq-42"]
    assert (line["level"], line["method"], line["route"], line["status"]) == (
        "INFO",
        "POST",
        "/orders",
        201,
    )
    assert line["duration_ms"] > 0


@pytest.mark.parametrize("sent", [None, "no spaces allowed", "x" * 129, "é"])
async def test_without_a_usable_request_id_each_request_gets_one_of_its_own(
    shop: Shop, step_lines: io.StringIO, sent: str | None
) -> None:
    headers = {} if sent is None else {"X-Request-Id": sent}
    async with shop.client.get("/items", headers=headers) as answer:
        given = answer.headers["X-Request-Id"]
    assert len(given) == 32
    int(given, 16)
    (line,) = [e for e in http_lines(step_lines) if e["request_id"] == given]
    assert (line["route"], line["status"]) == ("/items", 200)


async def test_a_request_no_route_takes_is_logged_without_its_path(
    shop: Shop, step_lines: io.StringIO
) -> None:
    async with shop.client.get("/no/such/place") as answer:
        given = answer.headers["X-Request-Id"]
        assert answer.status == 404
    (line,) = [e for e in http_lines(step_lines) if e["request_id"] == given]
    assert (line["route"], line["status"]) == ("(no route)", 404)
