"""What is seen of each request: one line at INFO (method, route, status, duration, request id)
and the HTTP metrics (`HttpMetrics`: by route, method and status, the time taken, how many are
being answered). The request's id is the `X-Request-Id` a client or proxy sent, when it is one a
log line can carry, else a new one; given back on the answer, and carried by every event of a
purchase it starts (`Event.request_id`), so that the step lines of that purchase name it
(`--log-steps on`). With tracing on, each request is a span too, and the purchase it starts is
that span's child (`sagashop.tracing`)."""

from __future__ import annotations

import logging
import os
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from sagashop.events import REQUEST_ID
from sagashop.http.context import NODE

log = logging.getLogger("sagashop.http")

HEADER = "X-Request-Id"
ID = web.RequestKey("request_id", str)
"""Where a request keeps its id (`request[ID]`)."""
TRACEPARENT = web.RequestKey("traceparent", str)
"""Where a request keeps its span's `traceparent`, when tracing is on."""


def request_id_of(request: web.Request) -> str:
    return request[ID]


def traceparent_of(request: web.Request) -> str | None:
    return request.get(TRACEPARENT)


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """First in line, so that it sees the answer every other middleware made."""
    given = request.headers.get(HEADER, "")
    request[ID] = given if given and REQUEST_ID.fullmatch(given) else os.urandom(16).hex()
    node = request.app[NODE]
    route, method = _route(request), _method(request)
    span = None if node.tracing is None else node.tracing.serving(method, route, request.headers)
    if span is not None:
        request[TRACEPARENT] = span.traceparent
    http = node.metrics.http
    http.in_flight.inc()
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
        http.in_flight.dec()
        seconds = time.perf_counter() - started
        http.observe(route, method, status, seconds)
        if span is not None:
            span.answered(status)
        if log.isEnabledFor(logging.INFO):
            _log_line(request, method, route, status, seconds * 1000)


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods named as they are in lines and labels; any other is `OTHER` (a caller cannot mint
label values)."""


def _method(request: web.Request) -> str:
    return request.method if request.method in METHODS else "OTHER"


def _route(request: web.Request) -> str:
    """The route as declared (`/orders/{order_id}`), not the path: labels and lines stay few
    and say nothing a caller chose."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(no route)"


def _log_line(request: web.Request, method: str, route: str, status: int, ms: float) -> None:
    fields = {"method": method, "route": route, "status": status}
    log.info(
        "%s %s %d %.1f ms (request %s)",
        method,
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
