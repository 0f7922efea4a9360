"""The application factory: routes, the one error mapping, and the node's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from importlib.metadata import version

from aiohttp import web

from sagashop.actors import SERVICES
from sagashop.bootstrap import running_node
from sagashop.config import MAX_BODY_BYTES, Settings
from sagashop.http.auth import add_auth
from sagashop.http.context import NODE
from sagashop.http.errors import json_errors
from sagashop.http.headers import add_security_headers
from sagashop.http.limits import add_limits, rate_limited
from sagashop.http.metrics import routes as metrics_routes
from sagashop.http.monitor import add_monitor
from sagashop.http.openapi import add_docs
from sagashop.http.requestlog import add_request_log
from sagashop.http.views import routes
from sagashop.saga import Service
from sagashop.tracing import Tracing

LINGER = 2.0
"""Seconds the rest of a body nobody read (an answer given before it was read: 408, 401, 404)
is drained before the connection closes; aiohttp's 10 would let a slow client hold it after a
408 as long again as the body timeout."""


def create_app(
    settings: Settings, catalogue: Sequence[Service] = SERVICES, tracing: Tracing | None = None
) -> web.Application:
    """The front door of a node started with `settings` (and, in tests, other services;
    `tracing`: spans, when on)."""
    app = web.Application(
        middlewares=[json_errors, rate_limited],
        client_max_size=MAX_BODY_BYTES,
        # aiohttp's keep-alive timeout is also the only limit on a request's head: it runs
        # from the connection's start (or the answer before) until a whole head has come.
        handler_args={"lingering_time": LINGER, "keepalive_timeout": settings.head_timeout},
    )

    async def node_lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with running_node(settings, catalogue, tracing) as node:
            app[NODE] = node
            yield

    app.cleanup_ctx.append(node_lifecycle)
    add_request_log(app)
    add_auth(app, settings)  # after the rate limit: a flood of bad tokens is limited too
    add_limits(app, settings)  # after the node: the limit's counts may live in its Redis
    add_security_headers(app)
    app.add_routes(routes)
    app.add_routes(metrics_routes)
    add_monitor(app)
    add_docs(app, "sagashop", version("sagashop"))
    return app
