"""What every endpoint reaches through the application: the running node."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sagashop.bootstrap import Node
from sagashop.requests import Request

NODE = web.AppKey("node", Node)


def ask(request: web.Request, service: str, name: Request, /, **args: Any) -> Any:
    """Ask a service on behalf of this HTTP request (see `Node.ask`)."""
    return request.app[NODE].ask(service, name, args)


def ask_waiting(
    request: web.Request, service: str, name: Request, wait: float, /, **args: Any
) -> Any:
    """Ask for an answer the service may hold back up to `wait` seconds (see `wait_seconds`)."""
    return request.app[NODE].ask(service, name, {**args, "wait": wait}, patience=wait)
