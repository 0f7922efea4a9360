"""The endpoints. Each one reads or changes state only by asking the service that owns it."""

from __future__ import annotations

import asyncio
from itertools import chain

from aiohttp import web

import sagashop.audit as audit
import sagashop.http.schemas as schemas
from sagashop.events import new_id
from sagashop.http.bodies import (
    IdempotencyHeader,
    LetterPath,
    NewItem,
    NewUser,
    OrderPath,
    PlaceOrder,
    UserPath,
    Wait,
    dead_letter_id,
    order_id_for,
    path_id,
    read_body,
    wait_seconds,
)
from sagashop.http.context import NODE, ask, ask_each, ask_waiting, service_names
from sagashop.http.errors import ErrorBody
from sagashop.http.openapi import Link, documented
from sagashop.requests import Request
from sagashop.vitals import memory

routes = web.RouteTableDef()

TEST_BALANCE = 50_000
TEST_ITEMS = (
    {"name": "Legendary Sword", "price": 10_000, "stock": 50},
    {"name": "Dragon Shield", "price": 5_000, "stock": 30},
    {"name": "Health Potion", "price": 1_000, "stock": 100},
)


UNAVAILABLE = {503: ErrorBody}
"""A service this endpoint asks is run by no process, or does not answer in time."""
NEW_ID = "$response.body#/id"
USER_LINKS = {
    name: Link(operation, {"user_id": NEW_ID})
    for name, operation in [
        ("GetBalance", "get_balance"),
        ("GetInventory", "get_inventory"),
        ("GetUserOrders", "get_user_orders"),
        ("GetNotifications", "get_notifications"),
    ]
}
"""Where a new user's id leads (the OpenAPI links that let a fuzzer reach real users)."""


@routes.post("/setup-test-data")
@documented(
    "Create a user (balance 50000) and three items to try the API with",
    responses={200: schemas.SampleDataCreated, **UNAVAILABLE},
    links={
        "PlaceOrder": Link(
            "place_order",
            body={
                "userId": "$response.body#/data/user/id",
                "itemId": "$response.body#/data/items/0/id",
            },
        )
    },
)
async def setup_test_data(request: web.Request) -> web.Response:
    user = await ask(
        request,
        "user",
        Request.CREATE_USER,
        user_id=new_id(),
        username=f"player-{new_id()[:8]}",
        balance=TEST_BALANCE,
    )
    items = await asyncio.gather(
        *(ask(request, "item", Request.CREATE_ITEM, item_id=new_id(), **i) for i in TEST_ITEMS)
    )
    data = {"user": user, "items": list(items)}
    return web.json_response({"success": True, "message": "test data created", "data": data})


@routes.post("/users")
@documented(
    "Create a user with the balance you choose",
    body=NewUser,
    responses={201: schemas.User, **UNAVAILABLE},
    links={**USER_LINKS, "PlaceOrder": Link("place_order", body={"userId": NEW_ID})},
)
async def create_user(request: web.Request) -> web.Response:
    body = await read_body(request, NewUser)
    user = await ask(request, "user", Request.CREATE_USER, user_id=new_id(), **body.model_dump())
    return web.json_response(user, status=201)


@routes.post("/items")
@documented(
    "Create an item",
    body=NewItem,
    responses={201: schemas.Item, **UNAVAILABLE},
    links={"PlaceOrder": Link("place_order", body={"itemId": NEW_ID})},
)
async def create_item(request: web.Request) -> web.Response:
    body = await read_body(request, NewItem)
    item = await ask(request, "item", Request.CREATE_ITEM, item_id=new_id(), **body.model_dump())
    return web.json_response(item, status=201)


@routes.get("/items")
@documented("The catalogue, with stock", responses={200: schemas.Catalogue, **UNAVAILABLE})
async def list_items(request: web.Request) -> web.Response:
    return web.json_response(await ask(request, "item", Request.LIST_ITEMS))


@routes.post("/orders")
@documented(
    "Start a purchase",
    body=PlaceOrder,
    headers=IdempotencyHeader,
    responses={201: schemas.Order, 404: ErrorBody, 409: ErrorBody, **UNAVAILABLE},
    links={
        "GetOrder": Link("get_order", {"order_id": NEW_ID}),
        "GetOrderStatus": Link("get_order_status", {"order_id": NEW_ID}),
    },
)
async def place_order(request: web.Request) -> web.Response:
    """Start a purchase. With an Idempotency-Key header, sending the same request again (after
    a timeout, say) answers with the same order instead of buying twice."""
    body = await read_body(request, PlaceOrder)
    order = await ask(
        request,
        "order",
        Request.PLACE_ORDER,
        order_id=order_id_for(request.headers.get("Idempotency-Key")),
        user_id=str(body.userId),
        item_id=str(body.itemId),
        quantity=body.quantity,
    )
    return web.json_response(order, status=201)


@routes.get("/orders/{order_id}")
@documented(
    "The order, its saga's steps and each service's part",
    path=OrderPath,
    query=Wait,
    responses={200: schemas.OrderView, **UNAVAILABLE},
)
async def get_order(request: web.Request) -> web.Response:
    """The order, its saga's steps so far across all services, and what each service holds.
    A service that does not answer is named under "unavailable"; the rest is shown.
    `?wait=SECONDS` answers once the order has ended, or when the wait is over."""
    order_id = path_id(request, "order_id", "order")
    wait = wait_seconds(request)
    stateful = service_names(request, stateful=True)
    order = await ask_waiting(request, "order", Request.GET_ORDER, wait, order_id=order_id)
    (histories, silent), (states, quiet) = await asyncio.gather(
        ask_each(request, service_names(request), Request.TIMELINE, order_id=order_id),
        ask_each(request, stateful, Request.ORDER_STATE, order_id=order_id),
    )
    steps = sorted(chain.from_iterable(histories.values()), key=lambda entry: entry["at"])
    services = {service: states.get(service) for service in stateful}
    unavailable = {**silent, **quiet}
    return web.json_response(
        {**order, "steps": steps, "services": services, "unavailable": unavailable}
    )


@routes.get("/orders/{order_id}/status")
@documented(
    "Only the order's status and failure reason",
    path=OrderPath,
    query=Wait,
    responses={200: schemas.OrderStatusView, **UNAVAILABLE},
)
async def get_order_status(request: web.Request) -> web.Response:
    """Only the order's status and why it failed: the cheap read for a client waiting for the
    outcome (with `?wait=SECONDS`, as for the whole order)."""
    order_id = path_id(request, "order_id", "order")
    wait = wait_seconds(request)
    status = await ask_waiting(request, "order", Request.GET_ORDER_STATUS, wait, order_id=order_id)
    return web.json_response(status)


@routes.get("/user/{user_id}/balance")
@documented("The user's balance", path=UserPath, responses={200: schemas.Balance, **UNAVAILABLE})
async def get_balance(request: web.Request) -> web.Response:
    user = await ask(request, "user", Request.GET_USER, user_id=path_id(request, "user_id", "user"))
    return web.json_response({"userId": user["id"], "balance": user["balance"]})


async def _of_user(request: web.Request, service: str, name: Request) -> web.Response:
    """Something another service keeps per user; 404 if the user service does not know them."""
    user_id = path_id(request, "user_id", "user")
    _user, found = await asyncio.gather(
        ask(request, "user", Request.GET_USER, user_id=user_id),
        ask(request, service, name, user_id=user_id),
    )
    return web.json_response(found)


@routes.get("/user/{user_id}/inventory")
@documented("The user's bag", path=UserPath, responses={200: schemas.Inventory, **UNAVAILABLE})
async def get_inventory(request: web.Request) -> web.Response:
    return await _of_user(request, "inventory", Request.GET_INVENTORY)


@routes.get("/user/{user_id}/orders")
@documented("The user's orders", path=UserPath, responses={200: schemas.UserOrders, **UNAVAILABLE})
async def get_user_orders(request: web.Request) -> web.Response:
    return await _of_user(request, "order", Request.LIST_USER_ORDERS)


@routes.get("/user/{user_id}/notifications")
@documented(
    "What the user was told",
    path=UserPath,
    responses={200: schemas.Notifications, **UNAVAILABLE},
)
async def get_notifications(request: web.Request) -> web.Response:
    return await _of_user(request, "notification", Request.LIST_NOTIFICATIONS)


@routes.get("/dead-letters")
@documented("Events whose step kept failing", responses={200: schemas.DeadLetters})
async def list_dead_letters(request: web.Request) -> web.Response:
    """Events whose step kept failing, in every service, oldest first."""
    found, silent = await ask_each(request, service_names(request), Request.DEAD_LETTERS)
    letters = sorted(chain.from_iterable(found.values()), key=lambda letter: letter["createdAt"])
    return web.json_response({"deadLetters": letters, "unavailable": silent})


@routes.post("/dead-letters/{letter_id}/replay")
@documented(
    "Deliver a dead letter again",
    path=LetterPath,
    responses={202: schemas.Replayed, **UNAVAILABLE},
)
async def replay_dead_letter(request: web.Request) -> web.Response:
    """Deliver a dead letter's event to its service again, after the cause is fixed."""
    service, letter_id = dead_letter_id(
        request.match_info["letter_id"], request.app[NODE].catalogue
    )
    replayed = await ask(request, service, Request.REPLAY_DEAD_LETTER, letter_id=letter_id)
    return web.json_response(replayed, status=202)


@routes.get("/audit")
@documented(
    "The conservation checks across every service",
    responses={200: schemas.AuditReport, **UNAVAILABLE},
)
async def run_audit(request: web.Request) -> web.Response:
    """The conservation checks across every service's store (see `sagashop.audit`), checked in
    a thread: with every order ever placed to go through, the loop must not wait for it."""
    node = request.app[NODE]
    facts = await audit.gather(node.ask, node.catalogue.values())
    report = await asyncio.to_thread(audit.check, facts)
    return web.json_response(report.to_dict())


@routes.get("/healthz")
@documented("Liveness: the process is up", responses={200: schemas.Alive}, tags=["probes"])
async def alive(_request: web.Request) -> web.Response:
    """The process is up and its loop answers (liveness: restart it if not)."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@documented(
    "Readiness: Redis, the databases and the actors answer",
    responses={200: schemas.Readiness, 503: schemas.Readiness},
    tags=["probes"],
)
async def ready(request: web.Request) -> web.Response:
    """Redis, this process's databases and its actors all answer (readiness: send it work);
    503, naming what does not, otherwise."""
    checks = await request.app[NODE].readiness()
    is_ready = all(outcome == "ok" for outcome in checks.values())
    return web.json_response({"ready": is_ready, "checks": checks}, status=200 if is_ready else 503)


@routes.get("/health")
@documented(
    "What this process runs, and how it is doing", responses={200: schemas.Health}, tags=["probes"]
)
async def health(request: web.Request) -> web.Response:
    node = request.app[NODE]
    faults = {
        "dropped": node.events.counts.dropped,
        "duplicated": node.events.counts.duplicated,
    }
    return web.json_response(
        {
            "status": "ok",
            "node": node.id,
            "services": list(node.services),
            "faults": faults,
            "loop": {"maxLagMs": round(node.lag.longest * 1000, 1)},
            "memory": memory(),
        }
    )
