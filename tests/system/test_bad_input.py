"""Bad input never reaches the saga: a clear status and error body, and nothing changes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.support import Shop, on_systems

# Refusing bad input happens before any service is asked: neither the database nor the
# transport matters.
pytestmark = on_systems("sqlite-pubsub")

UNKNOWN = str(uuid.uuid4())


def order(**fields: Any) -> str:
    return json.dumps(fields)


# (name, body or raw text, content type, status, error code, field)
ORDER_CASES = [
    ("malformed JSON", '{"userId": ', "application/json", 400, "invalid_request", None),
    ("empty body", "", "application/json", 400, "invalid_request", None),
    ("a JSON array", "[1, 2]", "application/json", 400, "invalid_request", None),
    ("text content type", "{}", "text/plain", 415, "unsupported_media_type", None),
    (
        "form content type",
        "a=1",
        "application/x-www-form-urlencoded",
        415,
        "unsupported_media_type",
        None,
    ),
    (
        "missing quantity",
        {"quantity": None},
        "application/json",
        400,
        "invalid_request",
        "quantity",
    ),
    ("extra field", {"price": 1}, "application/json", 400, "invalid_request", "price"),
    ("quantity zero", {"quantity": 0}, "application/json", 400, "invalid_request", "quantity"),
    ("quantity negative", {"quantity": -5}, "application/json", 400, "invalid_request", "quantity"),
    (
        "quantity fractional",
        {"quantity": 1.5},
        "application/json",
        400,
        "invalid_request",
        "quantity",
    ),
    ("quantity as text", {"quantity": "2"}, "application/json", 400, "invalid_request", "quantity"),
    (
        "quantity as boolean",
        {"quantity": True},
        "application/json",
        400,
        "invalid_request",
        "quantity",
    ),
    (
        "quantity above the maximum",
        {"quantity": 100},
        "application/json",
        400,
        "invalid_request",
        "quantity",
    ),
    ("userId not an id", {"userId": "abc"}, "application/json", 400, "invalid_request", "userId"),
    ("userId a number", {"userId": 12}, "application/json", 400, "invalid_request", "userId"),
    ("itemId null", {"itemId": None}, "application/json", 400, "invalid_request", "itemId"),
    ("unknown user", {"userId": UNKNOWN}, "application/json", 404, "not_found", None),
    ("unknown item", {"itemId": UNKNOWN}, "application/json", 404, "not_found", None),
    (
        "body over the size limit",
        {"padding": "x" * 20_000},
        "application/json",
        413,
        "body_too_large",
        None,
    ),
]


@pytest.fixture(scope="module")
async def world(shop: Shop) -> dict[str, str]:
    return {"user": await shop.new_user(balance=10_000), "item": await shop.new_item(stock=10)}


async def snapshot(shop: Shop, world: dict[str, str]) -> tuple[Any, ...]:
    user, item = world["user"], world["item"]
    return (
        await shop.balance(user),
        await shop.stock(item),
        await shop.orders_of(user),
        await shop.bag(user),
        len(await shop.every("/items", "items")),
    )


def body_for(case: Any, world: dict[str, str]) -> str:
    if isinstance(case, str):
        return case
    fields = {"userId": world["user"], "itemId": world["item"], "quantity": 1, **case}
    return order(
        **{key: value for key, value in fields.items() if not (value is None and key == "quantity")}
    )


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code", "field"),
    [case[1:] for case in ORDER_CASES],
    ids=[case[0] for case in ORDER_CASES],
)
async def test_a_bad_order_is_refused_and_changes_nothing(
    shop: Shop,
    world: dict[str, str],
    body: Any,
    content_type: str,
    status: int,
    code: str,
    field: str | None,
) -> None:
    before = await snapshot(shop, world)

    answer, error = await shop.call(
        "POST",
        "/orders",
        data=body_for(body, world).encode(),
        headers={"Content-Type": content_type},
    )

    assert answer == status, error
    assert error["error"]["code"] == code
    assert error["error"]["message"]
    assert error["error"].get("field") == field
    assert await snapshot(shop, world) == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/users", {"username": "x", "balance": -1}, "balance"),
        ("/users", {"username": "   ", "balance": 10}, "username"),
        ("/users", {"username": "x", "balance": 10, "active": "yes"}, "active"),
        ("/items", {"name": "x", "price": 0, "stock": 1}, "price"),
        ("/items", {"name": "x", "price": 10, "stock": -1}, "stock"),
        ("/items", {"name": "x", "price": 10}, "stock"),
        ("/users", {"username": "x", "balance": 46.5}, "balance"),
        ("/users", {"username": "x", "balance": "46"}, "balance"),
        ("/users", {"username": "x", "balance": True}, "balance"),
        ("/items", {"name": "x", "price": 10.25, "stock": 1}, "price"),
    ],
)
async def test_bad_users_and_items_are_refused(
    shop: Shop, world: dict[str, str], path: str, body: dict[str, Any], field: str
) -> None:
    before = await snapshot(shop, world)

    status, error = await shop.call("POST", path, json=body)

    assert (status, error["error"]["field"]) == (400, field)
    assert await snapshot(shop, world) == before


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/user/not-an-id/balance", 404, "not_found"),
        ("GET", f"/user/{UNKNOWN}/balance", 404, "not_found"),
        ("GET", f"/user/{UNKNOWN}/inventory", 404, "not_found"),
        ("GET", f"/user/{UNKNOWN}/orders", 404, "not_found"),
        ("GET", f"/orders/{UNKNOWN}", 404, "not_found"),
        ("GET", "/orders/42", 404, "not_found"),
        ("GET", "/no/such/endpoint", 404, "not_found"),
        ("POST", "/dead-letters/item-3x/replay", 404, "not_found"),
        ("POST", "/dead-letters/item-\u00b2/replay", 404, "not_found"),  # a digit to isdigit()
        ("POST", f"/dead-letters/item-{10**20}/replay", 404, "not_found"),  # past a BIGINT
        ("DELETE", "/orders", 405, "method_not_allowed"),
    ],
)
async def test_unknown_things_answer_json_errors(
    shop: Shop, method: str, path: str, status: int, code: str
) -> None:
    answer, error = await shop.call(method, path)

    assert (answer, error["error"]["code"]) == (status, code)
    assert error["error"]["message"]


async def test_a_method_not_allowed_names_the_methods_that_are(shop: Shop) -> None:
    async with shop.client.request("DELETE", "/users") as response:
        allowed = {method.strip() for method in response.headers.get("Allow", "").split(",")}
        assert response.status == 405
    assert allowed == {"POST"}


# JSON Schema, and so the OpenAPI document, calls 46.0 an integer: the API takes it as 46.
@pytest.mark.parametrize(
    ("path", "text", "field", "value"),
    [
        ("/users", '{"username": "x", "balance": 46.0}', "balance", 46),
        ("/items", '{"name": "x", "price": 1e3, "stock": 5.0}', "price", 1000),
        ("/items", '{"name": "x", "price": 10, "stock": 5.0}', "stock", 5),
    ],
)
async def test_a_number_with_no_fraction_is_an_integer(
    shop: Shop, path: str, text: str, field: str, value: int
) -> None:
    status, created = await shop.call(
        "POST", path, data=text.encode(), headers={"Content-Type": "application/json"}
    )

    assert status == 201, created
    assert created[field] == value
    assert isinstance(created[field], int)


async def test_an_order_for_a_quantity_written_2_0_buys_two(shop: Shop) -> None:
    user, item = await shop.new_user(balance=10_000), await shop.new_item(price=100, stock=5)
    text = json.dumps({"userId": user, "itemId": item, "quantity": 2.0})

    status, order = await shop.call(
        "POST", "/orders", data=text.encode(), headers={"Content-Type": "application/json"}
    )

    assert (status, order["quantity"], order["totalAmount"]) == (201, 2, 200), order
    assert (await shop.settle(order["id"]))["status"] == "COMPLETED"


@pytest.mark.parametrize("key", ["", "k" * 256], ids=["empty", "over 255 characters"])
async def test_a_bad_idempotency_key_is_refused(
    shop: Shop, world: dict[str, str], key: str
) -> None:
    before = await snapshot(shop, world)

    status, error = await shop.call(
        "POST",
        "/orders",
        data=body_for({}, world).encode(),
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )

    assert (status, error["error"]["field"]) == (400, "Idempotency-Key"), error
    assert await snapshot(shop, world) == before
