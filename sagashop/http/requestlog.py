"""One line per request at INFO (method, route, status, duration, request id), and the request's
id: the `X-Request-Id` a client or proxy sent, when it is one a log line can carry, else a new
one; given back on the answer, and carried by every event of a purchase it starts (`Event.
request_id`), so that the step lines of that purchase name it (`--log-steps on`)."""

from __future__ import annotations

import logging
import time
import uuid

from aiohttp import web
from aiohttp.typedefs import Handler

from sagashop.events import REQUEST_ID

log = logging.getLogger("sagashop.http")

HEADER = "X-Request-Id"
ID = web.RequestKey("request_id", str)
"""Where a request keeps its id (`request[ID]`)."""


def request_id_of(request: web.Request) -> str:
    return request[ID]


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """First in line, so that it sees the answer every other middleware made."""
    given = request.headers.get(HEADER, "")
    request[ID] = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as answer:
        status = answer.status
        raise
    finally:
        if log.isEnabledFor(logging.INFO):
            _log_line(request, status, (time.perf_counter() - started) * 1000)


def _log_line(request: web.Request, status: int, ms: float) -> None:
    """The route as declared (`/orders/{order_id}`), not the path: what varies is in the fields."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "(no route)"
    fields = {"method": request.method, "route": route, "status": status}
    log.info(
        "%s %s %d %.1f ms (request %s)",
        request.method,
        route,
        status,
        ms,
        request[ID],
        extra={**fields, "duration_ms": round(ms, 2), "request_id": request[ID]},
    )


async def give_the_id_back(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer, streams too (their headers go before the handler returns)."""
    if ID in request:
        response.headers[HEADER] = request[ID]


def add_request_log(app: web.Application) -> None:
    app.middlewares.insert(0, request_log)
    app.on_response_prepare.append(give_the_id_back)
