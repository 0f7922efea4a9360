"""An operator's commands on a running system, through its front door from anywhere: the audit,
and the dead letters listed and replayed (`run.py audit --url`, `run.py dead-letters`).

With auth on, they need an operator's token (`run.py token --operator`), given in the
environment as `SAGASHOP_TOKEN`, never on the command line (which any user of the machine can
read).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from sagashop.errors import SagashopError

TOKEN_VARIABLE = "SAGASHOP_TOKEN"
PAGE = 100


class RemoteError(SagashopError):
    """The system could not be asked, or refused: what it said, to print."""


class FrontDoor:
    """A running system's front door, asked as an operator."""

    def __init__(self, url: str, environ: Mapping[str, str] = os.environ) -> None:
        self.url = url.rstrip("/")
        token = environ.get(TOKEN_VARIABLE)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call(self, method: str, path: str, **params: str) -> Any:
        try:
            async with (
                aiohttp.ClientSession(headers=self.headers) as http,
                http.request(method, f"{self.url}{path}", params=params) as answer,
            ):
                body = await answer.json(content_type=None)
                if answer.status >= 400:
                    raise RemoteError(f"{method} {path} answered {answer.status}: {_said(body)}")
                return body
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise RemoteError(f"{method} {self.url}{path}: {error}") from None

    async def dead_letters(self, service: str | None) -> AsyncIterator[dict[str, Any]]:
        """Every dead letter, oldest first, a page at a time (of one service, if named)."""
        cursor: dict[str, str] = {}
        while True:
            page = await self.call("GET", "/dead-letters", limit=str(PAGE), **cursor)
            for letter in page["deadLetters"]:
                if service is None or letter["service"] == service:
                    yield letter
            if not page["next"]:
                return
            cursor = {"cursor": page["next"]}


def _said(body: Any) -> str:
    """The error's message, when the body is the front door's error; else the body."""
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message", error)) if isinstance(error, dict) else str(body)[:300]


def letter_line(letter: Mapping[str, Any]) -> str:
    replayed = f", replayed {letter['replayedAt']}" if letter["replayedAt"] else ""
    if letter["closedWith"]:
        replayed = f", closed with {letter['closedWith']} (nothing to replay)"
    return (
        f"{letter['id']}  {letter['service']} {letter['step']}  order {letter['orderId']}  "
        f"{letter['failures']} failure(s){replayed}: {letter['error']}"
    )
