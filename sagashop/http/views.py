"""The endpoints. Each one reads or changes state only by asking the service that owns it."""

from __future__ import annotations

import asyncio
import time
from itertools import chain
from typing import Any

from aiohttp import web

import sagashop.audit as audit
import sagashop.http.schemas as schemas
from sagashop.events import new_id
from sagashop.http.access import (
    ANYONE,
    OPERATOR,
    OWN_ORDER_IN_PATH,
    OWN_USER_IN_PATH,
    allow,
    own_user_in_body,
)
from sagashop.http.auth import caller_name, token_for
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
from sagashop.http.limits import AUDIT_REPORTS
from sagashop.http.openapi import Link, Refused, Tag, documented
from sagashop.http.pages import (
    PageQuery,
    cursor,
    letter_marks,
    merge_letters,
    page_asked,
    with_cursor,
)
from sagashop.http.requestlog import request_id_of, traceparent_of
from sagashop.names import Request, ServiceName
from sagashop.vitals import memory

routes = web.RouteTableDef()

TEST_BALANCE = 50_000
TEST_ITEMS = (
    {"name": "Legendary Sword", "price": 10_000, "stock": 50},
    {"name": "Dragon Shield", "price": 5_000, "stock": 30},
    {"name": "Health Potion", "price": 1_000, "stock": 100},
)


UNAVAILABLE = {503: Refused("a service it asks is run by no process, or did not answer in time")}
NO_USER = Refused("no user with that id")
NO_ORDER = Refused("no order with that id (with auth on, nor one of another player's)")
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
    tag=Tag.OPERATIONS,
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
@allow(OPERATOR)
async def setup_test_data(request: web.Request) -> web.Response:
    """A player named player-… with a balance of 50000, and three items: Legendary Sword
    (10000, 50 in stock), Dragon Shield (5000, 30) and Health Potion (1000, 100). With auth on,
    `data.token` is a bearer token for the new player."""
    user = await ask(
        request,
        ServiceName.USER,
        Request.CREATE_USER,
        user_id=new_id(),
        username=f"player-{new_id()[:8]}",
        balance=TEST_BALANCE,
    )
    items = await asyncio.gather(
        *(
            ask(request, ServiceName.ITEM, Request.CREATE_ITEM, item_id=new_id(), **i)
            for i in TEST_ITEMS
        )
    )
    data = {"user": user, "items": list(items), "token": token_for(request, user["id"])}
    return web.json_response({"success": True, "message": "test data created", "data": data})


@routes.post("/users")
@documented(
    "Create a user with the balance you choose",
    tag=Tag.PLAYERS,
    body=NewUser,
    responses={201: schemas.User, **UNAVAILABLE},
    links={**USER_LINKS, "PlaceOrder": Link("place_order", body={"userId": NEW_ID})},
)
@allow(OPERATOR)
async def create_user(request: web.Request) -> web.Response:
    """A new user (a player), active unless `active` is false; its id is what a purchase, and
    every per-user read, names."""
    body = await read_body(request, NewUser)
    user = await ask(
        request, ServiceName.USER, Request.CREATE_USER, user_id=new_id(), **body.model_dump()
    )
    return web.json_response(user, status=201)


@routes.post("/items")
@documented(
    "Create an item",
    tag=Tag.ITEMS,
    body=NewItem,
    responses={201: schemas.Item, **UNAVAILABLE},
    links={"PlaceOrder": Link("place_order", body={"itemId": NEW_ID})},
)
@allow(OPERATOR)
async def create_item(request: web.Request) -> web.Response:
    """A new item for sale, with its price and the stock there is to sell."""
    body = await read_body(request, NewItem)
    item = await ask(
        request, ServiceName.ITEM, Request.CREATE_ITEM, item_id=new_id(), **body.model_dump()
    )
    return web.json_response(item, status=201)


@routes.get("/items")
@documented(
    "The catalogue, with stock",
    tag=Tag.ITEMS,
    query=PageQuery,
    responses={200: schemas.Catalogue, **UNAVAILABLE},
)
@allow(ANYONE)
async def list_items(request: web.Request) -> web.Response:
    """Every item, oldest first, a page at a time (`?limit=&cursor=`: follow `next` until it is
    null); stock is what is left to sell, held units excluded."""
    limit, after = page_asked(request)
    found = await ask(request, ServiceName.ITEM, Request.LIST_ITEMS, after=after, limit=limit)
    return web.json_response(with_cursor(found))


@routes.post("/orders")
@documented(
    "Start a purchase",
    tag=Tag.ORDERS,
    body=PlaceOrder,
    headers=IdempotencyHeader,
    responses={
        201: schemas.Order,
        400: Refused("an Idempotency-Key that is empty or over 255 characters"),
        404: Refused("no user or no item with that id: no saga starts"),
        409: Refused("the Idempotency-Key came back with another user, item or quantity"),
        **UNAVAILABLE,
    },
    links={
        "GetOrder": Link("get_order", {"order_id": NEW_ID}),
        "GetOrderStatus": Link("get_order_status", {"order_id": NEW_ID}),
        "GetOrderTimeline": Link("get_order_timeline", {"order_id": NEW_ID}),
    },
)
@allow(own_user_in_body(PlaceOrder, "userId"))
async def place_order(request: web.Request) -> web.Response:
    """Start a purchase. With an Idempotency-Key header, sending the same request again (after
    a timeout, say) answers with the same order instead of buying twice."""
    body = await read_body(request, PlaceOrder)
    order = await ask(
        request,
        ServiceName.ORDER,
        Request.PLACE_ORDER,
        order_id=order_id_for(request.headers.get("Idempotency-Key"), caller_name(request)),
        user_id=str(body.userId),
        item_id=str(body.itemId),
        quantity=body.quantity,
        request_id=request_id_of(request),
        traceparent=traceparent_of(request),
    )
    return web.json_response(order, status=201)


@routes.get("/orders/{order_id}")
@documented(
    "The order",
    tag=Tag.ORDERS,
    path=OrderPath,
    query=Wait,
    responses={200: schemas.Order, 404: NO_ORDER, **UNAVAILABLE},
    links={"GetOrderTimeline": Link("get_order_timeline", {"order_id": "$request.path.order_id"})},
)
@allow(OWN_ORDER_IN_PATH)
async def get_order(request: web.Request) -> web.Response:
    """The order as the order service keeps it: one read of one service, the cheap way to
    follow an order (`?wait=SECONDS` answers once it has ended, or when the wait is over). Its
    saga's steps and what each service holds for it: `/orders/{order_id}/timeline`."""
    order_id = path_id(request, "order_id")
    wait = wait_seconds(request)
    order = await ask_waiting(
        request, ServiceName.ORDER, Request.GET_ORDER, wait, order_id=order_id
    )
    return web.json_response(order)


@routes.get("/orders/{order_id}/timeline")
@documented(
    "The order, its saga's steps and each service's part",
    tag=Tag.ORDERS,
    path=OrderPath,
    query=Wait,
    responses={200: schemas.OrderView, 404: NO_ORDER, **UNAVAILABLE},
)
@allow(OWN_ORDER_IN_PATH)
async def get_order_timeline(request: web.Request) -> web.Response:
    """The order, its saga's steps so far across all services, and what each service holds:
    every service is asked. A service that does not answer is named under "unavailable"; the
    rest is shown. `?wait=SECONDS` answers once the order has ended, or when the wait is over."""
    order_id = path_id(request, "order_id")
    wait = wait_seconds(request)
    stateful = service_names(request, stateful=True)
    order = await ask_waiting(
        request, ServiceName.ORDER, Request.GET_ORDER, wait, order_id=order_id
    )
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
    tag=Tag.ORDERS,
    path=OrderPath,
    query=Wait,
    responses={200: schemas.OrderStatusView, 404: NO_ORDER, **UNAVAILABLE},
)
@allow(OWN_ORDER_IN_PATH)
async def get_order_status(request: web.Request) -> web.Response:
    """Only the order's status and why it failed: the cheap read for a client waiting for the
    outcome (with `?wait=SECONDS`, as for the whole order)."""
    order_id = path_id(request, "order_id")
    wait = wait_seconds(request)
    status = await ask_waiting(
        request, ServiceName.ORDER, Request.GET_ORDER_STATUS, wait, order_id=order_id
    )
    return web.json_response(status)


@routes.get("/user/{user_id}/balance")
@documented(
    "The user's balance",
    tag=Tag.PLAYERS,
    path=UserPath,
    responses={200: schemas.Balance, 404: NO_USER, **UNAVAILABLE},
)
@allow(OWN_USER_IN_PATH)
async def get_balance(request: web.Request) -> web.Response:
    """What the user has to spend: money held for a running purchase is not in it."""
    user = await ask(
        request, ServiceName.USER, Request.GET_USER, user_id=path_id(request, "user_id")
    )
    return web.json_response({"userId": user["id"], "balance": user["balance"]})


async def _of_user(
    request: web.Request, service: str, name: Request, **args: Any
) -> dict[str, Any]:
    """Something another service keeps per user; 404 if the user service does not know them."""
    user_id = path_id(request, "user_id")
    _user, found = await asyncio.gather(
        ask(request, ServiceName.USER, Request.GET_USER, user_id=user_id),
        ask(request, service, name, user_id=user_id, **args),
    )
    return dict(found)


async def _page_of_user(request: web.Request, service: str, name: Request) -> web.Response:
    """A page of a list another service keeps per user (`?limit=&cursor=`)."""
    limit, after = page_asked(request)
    found = await _of_user(request, service, name, after=after, limit=limit)
    return web.json_response(with_cursor(found))


@routes.get("/user/{user_id}/inventory")
@documented(
    "The user's bag",
    tag=Tag.PLAYERS,
    path=UserPath,
    responses={200: schemas.Bag, 404: NO_USER, **UNAVAILABLE},
)
@allow(OWN_USER_IN_PATH)
async def get_inventory(request: web.Request) -> web.Response:
    """What the user bought, and the bag's free slots. Not paged: a bag has 20 slots, so it
    never holds more than 20 kinds of item."""
    return web.json_response(await _of_user(request, ServiceName.INVENTORY, Request.GET_INVENTORY))


@routes.get("/user/{user_id}/orders")
@documented(
    "The user's orders",
    tag=Tag.PLAYERS,
    path=UserPath,
    query=PageQuery,
    responses={200: schemas.UserOrders, 404: NO_USER, **UNAVAILABLE},
)
@allow(OWN_USER_IN_PATH)
async def get_user_orders(request: web.Request) -> web.Response:
    """Every order of the user, newest first, a page at a time (`?limit=&cursor=`: follow
    `next` until it is null)."""
    return await _page_of_user(request, ServiceName.ORDER, Request.LIST_USER_ORDERS)


@routes.get("/user/{user_id}/notifications")
@documented(
    "What the user was told",
    tag=Tag.PLAYERS,
    path=UserPath,
    query=PageQuery,
    responses={200: schemas.NotificationPage, 404: NO_USER, **UNAVAILABLE},
)
@allow(OWN_USER_IN_PATH)
async def get_notifications(request: web.Request) -> web.Response:
    """One message per ended order (completed, or cancelled and why), newest first, a page at
    a time (`?limit=&cursor=`)."""
    return await _page_of_user(request, ServiceName.NOTIFICATION, Request.LIST_NOTIFICATIONS)


@routes.get("/dead-letters")
@documented(
    "Events whose step kept failing",
    tag=Tag.OPERATIONS,
    query=PageQuery,
    responses={200: schemas.DeadLetterPage},
)
@allow(OPERATOR)
async def list_dead_letters(request: web.Request) -> web.Response:
    """Events whose step kept failing, in every service, oldest first. A page is merged from
    each service's next letters, so its cursor holds the last letter it gave per service."""
    limit, after = page_asked(request)
    marks = letter_marks(after)
    found, silent = await ask_each(
        request, service_names(request), Request.DEAD_LETTERS, after=marks, limit=limit + 1
    )
    letters, marks_after = merge_letters(found.values(), marks, limit)
    return web.json_response(
        {"deadLetters": letters, "unavailable": silent, "next": cursor(marks_after)}
    )


@routes.post("/dead-letters/{letter_id}/replay")
@documented(
    "Deliver a dead letter again",
    tag=Tag.OPERATIONS,
    path=LetterPath,
    responses={
        202: schemas.Replayed,
        404: Refused("no dead letter with that id"),
        409: Refused(
            "replayed already and not failed since, or its step was closed with its failure "
            "event when given up"
        ),
        **UNAVAILABLE,
    },
)
@allow(OPERATOR)
async def replay_dead_letter(request: web.Request) -> web.Response:
    """Deliver a dead letter's event to its service again, after the cause is fixed; once per
    failure (409 if it was replayed and has not failed again since, or if its step was closed
    with its failure event when given up: the saga was undone then, nothing waits)."""
    service, letter_id = dead_letter_id(
        request.match_info["letter_id"], request.app[NODE].catalogue
    )
    replayed = await ask(request, service, Request.REPLAY_DEAD_LETTER, letter_id=letter_id)
    return web.json_response(replayed, status=202)


@routes.get("/audit")
@documented(
    "The conservation checks across every service",
    tag=Tag.OPERATIONS,
    responses={200: schemas.AuditReport, **UNAVAILABLE},
)
@allow(OPERATOR)
async def run_audit(request: web.Request) -> web.Response:
    """The conservation checks across every service's store (see `sagashop.audit`), checked in
    a thread: with every order ever placed to go through, the loop must not wait for it. The
    stores see one audit per 2 s at most, however many ask (callers who ask together share
    one; see `limits.Paced`), so asking in a loop cannot load them."""
    node = request.app[NODE]

    async def report() -> dict[str, Any]:
        facts = await audit.gather(node.ask)
        return (await asyncio.to_thread(audit.check, facts)).to_dict()

    return web.json_response(await request.app[AUDIT_REPORTS].get(report))


@routes.post("/backups")
@documented(
    "Back up every service's SQLite file, online",
    tag=Tag.OPERATIONS,
    responses={
        201: schemas.Backup,
        409: Refused("the services are not all in this process, or not on SQLite"),
        **UNAVAILABLE,
    },
)
@allow(OPERATOR)
async def take_backup(request: web.Request) -> web.Response:
    """Pause every service between two batches, copy each SQLite file (SQLite's `.backup`),
    and go on: one consistent cut across the services, in `backups/` under the data directory.
    409 when the services are not all in this process or not on SQLite (use `pg_dump`)."""
    started = time.perf_counter()
    to, copies = await request.app[NODE].backup()
    took = round((time.perf_counter() - started) * 1000, 1)
    body = {"path": str(to), "files": [str(copy) for copy in copies], "tookMs": took}
    return web.json_response(body, status=201)


@routes.get("/healthz")
@documented("Liveness: the process is up", tag=Tag.OPERATIONS, responses={200: schemas.Alive})
@allow(ANYONE)
async def alive(_request: web.Request) -> web.Response:
    """The process is up and its loop answers (liveness: restart it if not)."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
@documented(
    "Readiness: Redis, the databases and the actors answer",
    tag=Tag.OPERATIONS,
    responses={
        200: schemas.Readiness,
        503: Refused("not ready: `checks` names what does not answer", schemas.Readiness),
    },
)
@allow(ANYONE)
async def ready(request: web.Request) -> web.Response:
    """Redis, this process's databases and its actors all answer (readiness: send it work);
    503, naming what does not, otherwise."""
    checks = await request.app[NODE].readiness()
    is_ready = all(outcome == "ok" for outcome in checks.values())
    return web.json_response({"ready": is_ready, "checks": checks}, status=200 if is_ready else 503)


@routes.get("/health")
@documented(
    "What this process runs, and how it is doing",
    tag=Tag.OPERATIONS,
    responses={200: schemas.Health},
)
@allow(OPERATOR)
async def health(request: web.Request) -> web.Response:
    """Its status is the readiness `/readyz` answers, so a supervisor reading either acts alike."""
    node = request.app[NODE]
    checks = await node.readiness()
    faults = {
        "dropped": node.events.counts.dropped,
        "duplicated": node.events.counts.duplicated,
        "rejected": dict(node.signer.rejected),
    }
    return web.json_response(
        {
            "status": "ok" if all(outcome == "ok" for outcome in checks.values()) else "unready",
            "checks": checks,
            "node": node.id,
            "services": list(node.services),
            "faults": faults,
            "loop": {"maxLagMs": round(node.lag.longest * 1000, 1)},
            "memory": memory(),
        }
    )
