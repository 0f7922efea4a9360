"""The endpoints. Each one reads or changes state only by asking the service that owns it."""

from __future__ import annotations

import asyncio
from itertools import chain
from typing import Any

from aiohttp import web

from sagashop.config import SERVICE_NAMES
from sagashop.events import new_id
from sagashop.http.app import NODE
from sagashop.http.bodies import NewItem, NewUser, PlaceOrder, path_id, read_body

routes = web.RouteTableDef()

TEST_BALANCE = 50_000
TEST_ITEMS = (
    {"name": "Legendary Sword", "price": 10_000, "stock": 50},
    {"name": "Dragon Shield", "price": 5_000, "stock": 30},
    {"name": "Health Potion", "price": 1_000, "stock": 100},
)
SERVICES_WITH_STATE = ("user", "inventory", "item", "payment", "notification")


def ask(request: web.Request, service: str, name: str, /, **args: Any) -> Any:
    return request.app[NODE].ask(service, name, args)


@routes.post("/setup-test-data")
async def setup_test_data(request: web.Request) -> web.Response:
    user = await ask(
        request, "user", "create_user", username=f"player-{new_id()[:8]}", balance=TEST_BALANCE
    )
    items = await asyncio.gather(*(ask(request, "item", "create_item", **i) for i in TEST_ITEMS))
    data = {"user": user, "items": list(items)}
    return web.json_response({"success": True, "message": "test data created", "data": data})


@routes.post("/users")
async def create_user(request: web.Request) -> web.Response:
    body = await read_body(request, NewUser)
    return web.json_response(
        await ask(request, "user", "create_user", **body.model_dump()), status=201
    )


@routes.post("/items")
async def create_item(request: web.Request) -> web.Response:
    body = await read_body(request, NewItem)
    return web.json_response(
        await ask(request, "item", "create_item", **body.model_dump()), status=201
    )


@routes.get("/items")
async def list_items(request: web.Request) -> web.Response:
    return web.json_response(await ask(request, "item", "list_items"))


@routes.post("/orders")
async def place_order(request: web.Request) -> web.Response:
    body = await read_body(request, PlaceOrder)
    order = await ask(
        request,
        "order",
        "place_order",
        user_id=str(body.userId),
        item_id=str(body.itemId),
        quantity=body.quantity,
    )
    return web.json_response(order, status=201)


@routes.get("/orders/{order_id}")
async def get_order(request: web.Request) -> web.Response:
    """The order, its saga's steps so far across all services, and what each service holds."""
    order_id = path_id(request, "order_id", "order")
    order = await ask(request, "order", "get_order", order_id=order_id)
    histories, states = await asyncio.gather(
        asyncio.gather(*(ask(request, s, "steps", order_id=order_id) for s in SERVICE_NAMES)),
        asyncio.gather(
            *(ask(request, s, "order_state", order_id=order_id) for s in SERVICES_WITH_STATE)
        ),
    )
    steps = sorted(chain.from_iterable(histories), key=lambda entry: entry["at"])
    services = dict(zip(SERVICES_WITH_STATE, states, strict=True))
    return web.json_response({**order, "steps": steps, "services": services})


@routes.get("/user/{user_id}/balance")
async def get_balance(request: web.Request) -> web.Response:
    user = await ask(request, "user", "get_user", user_id=path_id(request, "user_id", "user"))
    return web.json_response({"userId": user["id"], "balance": user["balance"]})


async def _of_user(request: web.Request, service: str, name: str) -> web.Response:
    """Something another service keeps per user; 404 if the user service does not know them."""
    user_id = path_id(request, "user_id", "user")
    _user, found = await asyncio.gather(
        ask(request, "user", "get_user", user_id=user_id),
        ask(request, service, name, user_id=user_id),
    )
    return web.json_response(found)


@routes.get("/user/{user_id}/inventory")
async def get_inventory(request: web.Request) -> web.Response:
    return await _of_user(request, "inventory", "get_inventory")


@routes.get("/user/{user_id}/orders")
async def get_user_orders(request: web.Request) -> web.Response:
    return await _of_user(request, "order", "list_user_orders")


@routes.get("/user/{user_id}/notifications")
async def get_notifications(request: web.Request) -> web.Response:
    return await _of_user(request, "notification", "list_notifications")


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return web.json_response({"status": "ok", "node": node.id, "services": list(node.services)})
