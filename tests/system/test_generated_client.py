"""A client generated from the live OpenAPI document by openapi-python-client: the generator
understands all of it (no warning), the package it writes passes `mypy --strict`, and a
purchase, a refusal and a paged list go through its typed calls and models only. The client is
generated once for the module."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient

from tests.support import Shop, eventually, on_systems

pytestmark = on_systems("sqlite-pubsub")

PACKAGE = "sagashop_client"
CONFIG = "post_hooks: []\n"  # the code as the generator writes it, not reformatted by a hook
STEP_TIME_LIMIT = 180.0


async def run(*command: str, cwd: Path) -> str:
    """Run a command to its end (within a deadline) and give its output; fail if it fails."""
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), STEP_TIME_LIMIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-8000:]
    return text


@pytest.fixture(scope="module")
async def generated(shop: Shop, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Path]:
    """The directory holding the generated package, importable while the module's tests run."""
    where = tmp_path_factory.mktemp("generated")
    (where / "openapi.json").write_text(json.dumps(await shop.ok("GET", "/openapi.json")))
    (where / "config.yaml").write_text(CONFIG)
    output = await run(
        sys.executable,
        "-m",
        "openapi_python_client",
        "generate",
        "--path=openapi.json",
        "--meta=none",
        f"--output-path={PACKAGE}",
        "--config=config.yaml",
        cwd=where,
    )
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(where))
    try:
        yield where
    finally:
        sys.path.remove(str(where))
        for name in [name for name in sys.modules if name.partition(".")[0] == PACKAGE]:
            del sys.modules[name]


def generated_module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture
def models(generated: Path) -> Any:
    return generated_module("models")


@pytest.fixture
async def client(shop: Shop, generated: Path) -> AsyncIterator[Any]:
    """The generated client, on the system under test; an undocumented status raises."""
    base_url = str(cast(TestClient[Any, Any], shop.client).make_url("/"))
    made = generated_module("client").Client(base_url=base_url, raise_on_unexpected_status=True)
    async with made:
        yield made


def call(operation: str) -> Any:
    """A generated operation's typed coroutine (`players.create_user`: its parsed answer)."""
    return generated_module(f"api.{operation}").asyncio


def detailed(operation: str) -> Any:
    """A generated operation's coroutine that gives the status with the parsed answer."""
    return generated_module(f"api.{operation}").asyncio_detailed


async def test_the_generated_package_passes_mypy_strict(generated: Path) -> None:
    await run(
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        f"--cache-dir={generated / '.mypy_cache'}",
        f"--package={PACKAGE}",
        cwd=generated,
    )


def test_no_call_is_generated_for_the_endless_event_stream(generated: Path) -> None:
    calls = {path.stem for path in (generated / PACKAGE / "api").glob("*/*.py")}

    assert "monitor_events" not in calls
    assert {"place_order", "get_order_status", "get_user_orders", "summary"} <= calls


async def new_player(client: Any, models: Any, balance: int = 50_000) -> Any:
    body = models.NewUser(username="generated client", balance=balance)
    user = await call("players.create_user")(client=client, body=body)
    assert isinstance(user, models.User), user
    return user


async def new_item(client: Any, models: Any, price: int, stock: int) -> Any:
    body = models.NewItem(name="Generated sword", price=price, stock=stock)
    item = await call("items.create_item")(client=client, body=body)
    assert isinstance(item, models.Item), item
    return item


async def test_a_purchase_completes_through_the_typed_calls(client: Any, models: Any) -> None:
    user = await new_player(client, models)
    item = await new_item(client, models, price=10_000, stock=5)

    body = models.PlaceOrder(user_id=user.id, item_id=item.id, quantity=2)
    order = await call("orders.place_order")(client=client, body=body)
    assert isinstance(order, models.Order), order
    assert (order.status, order.total_amount) == (models.OrderStatus.PENDING, 20_000)

    async def status() -> Any:
        return await call("orders.get_order_status")(client=client, order_id=order.id, wait=5.0)

    final = await eventually(status, lambda found: found.status != models.OrderStatus.PENDING)
    balance = await call("players.get_balance")(client=client, user_id=user.id)
    timeline = await call("orders.get_order_timeline")(client=client, order_id=order.id)

    assert final.status == models.OrderStatus.COMPLETED, final.failure_reason
    assert isinstance(balance, models.Balance)
    assert balance.balance == 30_000
    assert timeline.services.payment.state == models.PaymentState.CAPTURED
    assert {step.kind for step in timeline.steps} == {models.StepKind.FORWARD}


async def test_a_refusal_comes_back_as_a_typed_error(client: Any, models: Any) -> None:
    missing = await detailed("players.get_balance")(client=client, user_id=uuid4())
    refused = await detailed("players.create_user")(
        client=client, body=models.NewUser(username="nobody", balance=-1)
    )

    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.ErrorBody)
    assert missing.parsed.error.code == "not_found"
    assert refused.status_code == 400
    assert isinstance(refused.parsed, models.ErrorBody)
    assert (refused.parsed.error.code, refused.parsed.error.field) == ("invalid_request", "balance")


async def test_a_paged_list_is_followed_by_its_cursors(client: Any, models: Any) -> None:
    user = await new_player(client, models)
    item = await new_item(client, models, price=100, stock=50)
    placed = set()
    for _ in range(5):
        body = models.PlaceOrder(user_id=user.id, item_id=item.id, quantity=1)
        placed.add((await call("orders.place_order")(client=client, body=body)).id)

    seen = await every_order(client, models, user.id)

    assert sorted(seen) == sorted(placed)  # each order once, none missing


async def every_order(client: Any, models: Any, user_id: Any) -> list[Any]:
    """The user's orders, two a page, following `next` until it is null."""
    found: list[Any] = []
    cursor = generated_module("types").UNSET
    while True:
        page = await call("players.get_user_orders")(
            client=client, user_id=user_id, limit=2, cursor=cursor
        )
        assert isinstance(page, models.UserOrders), page
        assert len(page.orders) <= 2
        found += [order.id for order in page.orders]
        if page.next_ is None:
            return found
        cursor = page.next_
