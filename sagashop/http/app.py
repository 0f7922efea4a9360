"""The application factory: routes, the one error mapping, and the node's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from importlib.metadata import version

from aiohttp import web

from sagashop.actors import SERVICES
from sagashop.bootstrap import running_node
from sagashop.config import Settings
from sagashop.http.context import NODE
from sagashop.http.errors import json_errors
from sagashop.http.metrics import routes as metrics_routes
from sagashop.http.monitor import add_monitor
from sagashop.http.openapi import add_docs
from sagashop.http.views import routes
from sagashop.saga import Service

MAX_BODY_BYTES = 16 * 1024


def create_app(settings: Settings, catalogue: Sequence[Service] = SERVICES) -> web.Application:
    """The front door of a node started with `settings` (and, in tests, other services)."""
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)

    async def node_lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with running_node(settings, catalogue) as node:
            app[NODE] = node
            yield

    app.cleanup_ctx.append(node_lifecycle)
    app.add_routes(routes)
    app.add_routes(metrics_routes)
    add_monitor(app)
    add_docs(app, "sagashop", version("sagashop"))
    return app
