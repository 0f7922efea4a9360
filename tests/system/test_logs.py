"""With `--log-steps on`, every saga step a service takes is one log line, and in the JSON format
that line carries the step's facts as fields: order_id, event_id, service, step, outcome."""

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

FIELDS = ("order_id", "event_id", "service", "step", "outcome")
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
    settings = make_settings(redis_url, tmp_path_factory.mktemp("data"), None)
    async with started_shop(settings, catalogue) as started:
        yield started


@pytest.fixture
def step_lines(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """The JSON lines the services log, with their step lines on as `--log-steps on` has them."""
    for service in SERVICE_NAMES:
        caplog.set_level(logging.DEBUG, logger=f"sagashop.{service}")  # undone after the test
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
        assert entry["level"] == "DEBUG"
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
