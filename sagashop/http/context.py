"""What every endpoint reaches through the application: the running node."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from sagashop.bootstrap import Node
from sagashop.errors import Unavailable
from sagashop.names import Request

NODE = web.AppKey("node", Node)


def ask(request: web.Request, service: str, name: Request, /, **args: Any) -> Any:
    """Ask a service on behalf of this HTTP request (see `Node.ask`)."""
    return request.app[NODE].ask(service, name, args)


def ask_waiting(
    request: web.Request, service: str, name: Request, wait: float, /, **args: Any
) -> Any:
    """Ask for an answer the service may hold back up to `wait` seconds (see `wait_seconds`)."""
    return request.app[NODE].ask(service, name, {**args, "wait": wait}, patience=wait)


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


def service_names(request: web.Request, *, stateful: bool = False) -> list[str]:
    """The services of the system (those that hold something per order, if `stateful`)."""
    catalogue = request.app[NODE].catalogue.values()
    return [service.name for service in catalogue if service.stateful or not stateful]
