"""The endpoints. Each one reads or changes state only by asking the service that owns it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import chain
from typing import Any

from aiohttp import web

import sagashop.audit as audit
from sagashop.errors import Unavailable
from sagashop.events import new_id
from sagashop.http.bodies import (
    NewItem,
    NewUser,
    PlaceOrder,
    dead_letter_id,
    order_id_for,
    path_id,
    read_body,
    wait_seconds,
)
from sagashop.http.context import NODE, ask, ask_waiting
from sagashop.requests import Request
from sagashop.vitals import memory

routes = web.RouteTableDef()

TEST_BALANCE = 50_000
TEST_ITEMS = (
    {"name": "Legendary Sword", "price": 10_000, "stock": 50},
    {"name": "Dragon Shield", "price": 5_000, "stock": 30},
    {"name": "Health Potion", "price": 1_000, "stock": 100},
)


def service_names(request: web.Request, *, stateful: bool = False) -> list[str]:
    """The services of the system (those that hold something per order, if `stateful`)."""
    catalogue = request.app[NODE].catalogue.values()
    return [service.name for service in catalogue if service.stateful or not stateful]


@routes.post("/setup-test-data")
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
async def create_user(request: web.Request) -> web.Response:
    body = await read_body(request, NewUser)
    user = await ask(request, "user", Request.CREATE_USER, user_id=new_id(), **body.model_dump())
    return web.json_response(user, status=201)


@routes.post("/items")
async def create_item(request: web.Request) -> web.Response:
    body = await read_body(request, NewItem)
    item = await ask(request, "item", Request.CREATE_ITEM, item_id=new_id(), **body.model_dump())
    return web.json_response(item, status=201)


@routes.get("/items")
async def list_items(request: web.Request) -> web.Response:
    return web.json_response(await ask(request, "item", Request.LIST_ITEMS))


@routes.post("/orders")
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
async def get_order_status(request: web.Request) -> web.Response:
    """Only the order's status and why it failed: the cheap read for a client waiting for the
    outcome (with `?wait=SECONDS`, as for the whole order)."""
    order_id = path_id(request, "order_id", "order")
    wait = wait_seconds(request)
    status = await ask_waiting(request, "order", Request.GET_ORDER_STATUS, wait, order_id=order_id)
    return web.json_response(status)


async def ask_each(
    request: web.Request, services: Sequence[str], name: Request, **args: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Ask several services at once: their answers, and why those that did not answer did not."""
    answers = await asyncio.gather(
        *(ask(request, service, name, **args) for service in services), return_exceptions=True
    )
    found: dict[str, Any] = {}
    silent: dict[str, str] = {}
    for service, answer in zip(services, answers, strict=True):
        if isinstance(answer, Unavailable):
            silent[service] = answer.message
        elif isinstance(answer, BaseException):
            raise answer
        else:
            found[service] = answer
    return found, silent


@routes.get("/user/{user_id}/balance")
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
async def get_inventory(request: web.Request) -> web.Response:
    return await _of_user(request, "inventory", Request.GET_INVENTORY)


@routes.get("/user/{user_id}/orders")
async def get_user_orders(request: web.Request) -> web.Response:
    return await _of_user(request, "order", Request.LIST_USER_ORDERS)


@routes.get("/user/{user_id}/notifications")
async def get_notifications(request: web.Request) -> web.Response:
    return await _of_user(request, "notification", Request.LIST_NOTIFICATIONS)


@routes.get("/dead-letters")
async def list_dead_letters(request: web.Request) -> web.Response:
    """Events whose step kept failing, in every service, oldest first."""
    found, silent = await ask_each(request, service_names(request), Request.DEAD_LETTERS)
    letters = sorted(chain.from_iterable(found.values()), key=lambda letter: letter["createdAt"])
    return web.json_response({"deadLetters": letters, "unavailable": silent})


@routes.post("/dead-letters/{letter_id}/replay")
async def replay_dead_letter(request: web.Request) -> web.Response:
    """Deliver a dead letter's event to its service again, after the cause is fixed."""
    service, letter_id = dead_letter_id(
        request.match_info["letter_id"], request.app[NODE].catalogue
    )
    replayed = await ask(request, service, Request.REPLAY_DEAD_LETTER, letter_id=letter_id)
    return web.json_response(replayed, status=202)


@routes.get("/audit")
async def run_audit(request: web.Request) -> web.Response:
    """The conservation checks across every service's store (see `sagashop.audit`), checked in
    a thread: with every order ever placed to go through, the loop must not wait for it."""
    node = request.app[NODE]
    facts = await audit.gather(node.ask, node.catalogue.values())
    report = await asyncio.to_thread(audit.check, facts)
    return web.json_response(report.to_dict())


@routes.get("/healthz")
async def alive(_request: web.Request) -> web.Response:
    """The process is up and its loop answers (liveness: restart it if not)."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def ready(request: web.Request) -> web.Response:
    """Redis, this process's databases and its actors all answer (readiness: send it work);
    503, naming what does not, otherwise."""
    checks = await request.app[NODE].readiness()
    is_ready = all(outcome == "ok" for outcome in checks.values())
    return web.json_response({"ready": is_ready, "checks": checks}, status=200 if is_ready else 503)


@routes.get("/health")
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
