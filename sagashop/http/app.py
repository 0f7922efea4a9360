"""The application factory: routes, the one error mapping, and the node's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sagashop.bootstrap import Node, running_node
from sagashop.config import Settings
from sagashop.http.errors import json_errors

NODE = web.AppKey("node", Node)
MAX_BODY_BYTES = 16 * 1024


def create_app(settings: Settings) -> web.Application:
    from sagashop.http.views import routes

    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY_BYTES)

    async def node_lifecycle(app: web.Application) -> AsyncIterator[None]:
        async with running_node(settings) as node:
            app[NODE] = node
            yield

    app.cleanup_ctx.append(node_lifecycle)
    app.add_routes(routes)
    return app
