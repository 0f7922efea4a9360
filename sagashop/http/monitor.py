"""The saga monitor: the page at `/`, the live feed of steps it draws (server-sent events), and
the reads and controls it uses (`/summary`, `/orders`, `/payments/failure-rate`).

A stream handler is not cancelled when its client goes away (aiohttp leaves it running), so it
looks at its connection every `LOOK_EVERY` seconds; and it never ends by itself, so an
`on_shutdown` hook ends every stream, or stopping the server would wait for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

import sagashop.http.schemas as schemas
import sagashop.monitor
from sagashop.http.access import ANYONE, OPERATOR, allow
from sagashop.http.bodies import (
    FailureRate,
    OrderListQuery,
    read_body,
    read_query,
)
from sagashop.http.context import NODE, ask, ask_each, service_names
from sagashop.http.openapi import EVENT_STREAM, Media, Refused, Tag, documented
from sagashop.http.pages import position, with_cursor
from sagashop.monitor import CLOSED, Watchers
from sagashop.names import Request, ServiceName

routes = web.RouteTableDef()

WATCHERS = web.AppKey("watchers", Watchers)
STATIC = Path(sagashop.monitor.__file__).parent / "static"
PAGE = (
    (STATIC.parent / "page.html")
    .read_text()
    .replace("{services}", " ".join(ServiceName))
    .replace("{lanes}", "".join(f"<b>{service}</b>" for service in ServiceName))
)
"""The page, its lanes the services in the order a purchase reaches them (`ServiceName`); its
template lives beside `static/`, which serves only what needs no filling in."""
LOOK_EVERY = 1.0
HEARTBEAT = 15.0
UNAVAILABLE = Refused("the service it asks is run by no process, or did not answer in time")
TEST_CONTROL = Refused("a test control: the payment service runs with --test-controls off")


def add_monitor(app: web.Application) -> None:
    """The page, its files, its routes, and the streams' lifecycle (after the node's)."""
    app.add_routes(routes)
    app.router.add_static("/monitor/", STATIC)
    app.cleanup_ctx.append(_watchers)
    app.on_shutdown.append(_end_streams)


async def _watchers(app: web.Application) -> AsyncIterator[None]:
    node = app[NODE]
    app[WATCHERS] = Watchers(node.link, node.channels.monitor(), node.signer)
    yield


async def _end_streams(app: web.Application) -> None:
    if WATCHERS in app:
        await app[WATCHERS].close()


@routes.get("/")
@documented(
    "The saga monitor page",
    tag=Tag.MONITOR,
    responses={200: Media("text/html", "The page, which reads /monitor/events and /summary")},
)
@allow(ANYONE)
async def monitor_page(_request: web.Request) -> web.Response:
    """Sagas live, one swimlane per service; start purchases and provoke failures from it."""
    return web.Response(text=PAGE, content_type="text/html")


@routes.get("/monitor/events")
@documented(
    "The steps every service takes, live: an event stream that never ends",
    tag=Tag.MONITOR,
    responses={200: Media(EVENT_STREAM, "Server-sent events, for as long as the client listens")},
)
@allow(OPERATOR)
async def monitor_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events (text/event-stream) that never end: the answer is not a body to
    read to its end but a stream to read as it comes. Each `steps` event's data is a JSON
    object, `{"node", "steps": [{"orderId", "service", "step", "handled", "event", "kind",
    "reason", "at"}], "missed"}`: the steps one process took in the last quarter second, and
    how many it left out (past 500 per quarter second it sends a count instead). A comment
    line comes every 15 s while nothing happens.

    Read it with an EventSource in a browser, `curl -N`, or a streaming HTTP client (httpx:
    `client.stream("GET", "/monitor/events")` and `iter_lines()`); a client that reads the
    whole body first (a generated client's call) would never return, so the document
    describes this path under `components.pathItems`, which openapi-python-client skips."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    async with request.app[WATCHERS].watching() as inbox:
        try:
            await response.write(b"retry: 2000\n\n")
            await _stream(request, response, inbox)
        except ConnectionResetError:
            pass  # the page went away while we wrote to it
    return response


async def _stream(
    request: web.Request, response: web.StreamResponse, inbox: asyncio.Queue[str]
) -> None:
    quiet = 0.0
    while not _gone(request):
        try:
            text = await asyncio.wait_for(inbox.get(), LOOK_EVERY)
        except TimeoutError:
            quiet += LOOK_EVERY
            if quiet >= HEARTBEAT:
                await response.write(b": still here\n\n")
                quiet = 0.0
            continue
        if text == CLOSED:
            return
        await response.write(f"event: steps\ndata: {text}\n\n".encode())
        quiet = 0.0


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


@routes.get("/summary")
@documented(
    "Counters of the whole system",
    tag=Tag.MONITOR,
    responses={200: schemas.Summary, 503: UNAVAILABLE},
)
@allow(OPERATOR)
async def summary(request: web.Request) -> web.Response:
    """What the monitor's counters show: orders by status, cancellations by the refusing
    service, dead letters waiting in every service."""
    counts, (dead, silent) = await asyncio.gather(
        ask(request, ServiceName.ORDER, Request.COUNT_ORDERS),
        ask_each(request, service_names(request), Request.COUNT_DEAD_LETTERS),
    )
    found = schemas.Summary(
        orders=counts["byStatus"],
        inFlight=counts["byStatus"]["PENDING"],
        cancelledBy=counts["cancelledBy"],
        deadLetters=sum(dead.values()),
        unavailable=silent,
    )
    return web.json_response(found.model_dump(mode="json"))


@routes.get("/orders")
@documented(
    "The latest orders, or those whose id begins with what you type",
    tag=Tag.ORDERS,
    query=OrderListQuery,
    responses={
        200: schemas.OrderList,
        404: Refused("a cursor of another list (a search's cursor is not the latest's)"),
        503: UNAVAILABLE,
    },
)
@allow(OPERATOR)
async def list_orders(request: web.Request) -> web.Response:
    """Newest first, of one status if asked (the monitor's list of recent orders). With
    `idPrefix`, the orders whose id begins with it, in id order (the monitor's search: the
    first 8 characters an order is shown by find it among millions, read from the id's
    index). A page at a time: follow `next` until it is null."""
    chosen = read_query(request, OrderListQuery)
    after = None if chosen.cursor is None else position(chosen.cursor)
    status = None if chosen.status is None else chosen.status.value
    found = await ask(
        request,
        ServiceName.ORDER,
        Request.LIST_ORDERS,
        status=status,
        limit=chosen.limit,
        after=after,
        id_prefix=chosen.idPrefix,
    )
    return web.json_response(with_cursor(found))


@routes.get("/payments/failure-rate")
@documented(
    "The payment mock's decline rate",
    tag=Tag.OPERATIONS,
    responses={200: schemas.PaymentSettings, 503: UNAVAILABLE},
)
@allow(OPERATOR)
async def get_failure_rate(request: web.Request) -> web.Response:
    """The share of charges the payment mock declines, and its seed (the monitor shows and
    sets them)."""
    return web.json_response(await ask(request, ServiceName.PAYMENT, Request.PAYMENT_SETTINGS))


@routes.put("/payments/failure-rate")
@documented(
    "Set the payment mock's decline rate",
    tag=Tag.OPERATIONS,
    body=FailureRate,
    responses={
        200: schemas.PaymentSettings,
        403: TEST_CONTROL,
        503: UNAVAILABLE,
    },
)
@allow(OPERATOR)
async def set_failure_rate(request: web.Request) -> web.Response:
    """Provoke the payment step's compensations: the next charges are declined at this rate."""
    chosen = await read_body(request, FailureRate)
    rate = await ask(
        request,
        ServiceName.PAYMENT,
        Request.CONFIGURE_PAYMENTS,
        failure_rate=chosen.failureRate,
        seed=chosen.seed,
    )
    return web.json_response(rate)
