"""`/metrics`: what this process counted, in Prometheus' text format (see `sagashop.metrics`)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from sagashop.http.access import OPERATOR, allow
from sagashop.http.context import NODE
from sagashop.http.openapi import Media, documented

routes = web.RouteTableDef()


@routes.get("/metrics")
@documented(
    "Prometheus metrics of this process",
    responses={200: Media("text/plain")},
    tags=["probes"],
)
@allow(OPERATOR)
async def metrics(request: web.Request) -> web.StreamResponse:
    """Sagas, steps, events, the outbox, dead letters and the event loop, counted by this
    process only: a scraper sums over the processes. Served by prometheus_client's handler
    (`Accept: application/openmetrics-text` gets OpenMetrics; `?name[]=` picks series)."""
    serve = make_aiohttp_handler(request.app[NODE].metrics.registry)
    return await serve(request)
