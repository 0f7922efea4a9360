"""`/metrics`: what this process counted, in Prometheus' text format (see `sagashop.metrics`)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from sagashop.http.access import OPERATOR, allow
from sagashop.http.context import NODE
from sagashop.http.openapi import Media, Tag, documented

routes = web.RouteTableDef()


@routes.get("/metrics")
@documented(
    "Prometheus metrics of this process",
    tag=Tag.OPERATIONS,
    responses={200: Media("text/plain", "Prometheus' text format (or OpenMetrics, if asked)")},
)
@allow(OPERATOR)
async def metrics(request: web.Request) -> web.StreamResponse:
    """Sagas, steps, events, the outbox, dead letters and the event loop, counted by this
    process only: a scraper sums over the processes. Served by prometheus_client's handler
    (`Accept: application/openmetrics-text` gets OpenMetrics; `?name[]=` picks series)."""
    serve = make_aiohttp_handler(request.app[NODE].metrics.registry)
    return await serve(request)
