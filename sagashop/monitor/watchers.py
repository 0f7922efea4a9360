"""The listening side of the monitor: one subscription to the monitor channel per process, open
only while a page watches, fanned out to every page's own bounded inbox.

What arrives is checked before a page sees it: signed by a node of this system (as every bus
message is), not oversized, and rebuilt from its checked fields, so nothing a stranger wrote on
the channel, no line break that would end an event-stream message early, reaches a page. A page
that reads too slowly misses messages rather than holding memory; `close` wakes every page's
stream so the server can stop at once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sagashop.events import MAX_TEXT, MalformedEvent
from sagashop.monitor.feed import MAX_PER_FLUSH
from sagashop.transport.link import Link, Listening
from sagashop.transport.pubsub import Message
from sagashop.transport.signing import MAX_SKEW, Signer

INBOX_SIZE = 64
MAX_MESSAGE = 1024 * 1024
CLOSED = ""
"""What an inbox gets when the server stops: the stream ends."""


class Watchers:
    """The monitor pages this process serves, and the subscription they share."""

    def __init__(self, link: Link, channel: str, signer: Signer) -> None:
        self._link = link
        self._channel = channel
        self._signer = signer
        self._inboxes: set[asyncio.Queue[str]] = set()
        self._subscription: Listening | None = None
        self._closed = False
        self._turn = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._inboxes)

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[asyncio.Queue[str]]:
        """An inbox of monitor messages (JSON texts), subscribed when this enters. Leaving is
        shielded: a page must not stay counted because its stream was cancelled."""
        inbox: asyncio.Queue[str] = asyncio.Queue(INBOX_SIZE)
        try:
            await self._join(inbox)
            yield inbox
        finally:
            await asyncio.shield(self._leave(inbox))

    async def _join(self, inbox: asyncio.Queue[str]) -> None:
        async with self._turn:
            self._inboxes.add(inbox)
            if self._closed:
                inbox.put_nowait(CLOSED)
            elif self._subscription is None:
                self._subscription = await self._link.listen(
                    [self._channel], self._hand_out, "monitor"
                )

    async def _leave(self, inbox: asyncio.Queue[str]) -> None:
        async with self._turn:
            self._inboxes.discard(inbox)
            if not self._inboxes and self._subscription is not None:
                subscription, self._subscription = self._subscription, None
                await subscription.stop()

    async def close(self, *_: object) -> None:
        """End every stream (an `on_shutdown` hook: a stream never ends by itself)."""
        self._closed = True
        for inbox in self._inboxes:
            _offer(inbox, CLOSED)

    async def _hand_out(self, messages: list[Message]) -> None:
        for channel, data in messages:
            try:
                text = _checked(self._signer.open(channel, data, MAX_SKEW, MAX_MESSAGE))
            except Exception as error:  # whatever a stranger sent costs that message only
                self._signer.reject(channel, error, data)
                continue
            if text is None:
                continue
            for inbox in self._inboxes:
                _offer(inbox, text)


STEP_FIELDS = ("orderId", "service", "step", "handled", "event", "kind", "reason", "at")


def _checked(body: str) -> str | None:
    """A monitor message rebuilt from its checked fields (never passed on as it came): a node
    id, the steps (each of the fields a feed writes, text or null) and how many were missed;
    None for an empty one."""
    message = json.loads(body)
    if not isinstance(message, dict) or set(message) != {"node", "steps", "missed"}:
        raise MalformedEvent("a monitor message is {node, steps, missed}")
    node, steps, missed = message["node"], message["steps"], message["missed"]
    if not _text(node) or not isinstance(steps, list) or len(steps) > MAX_PER_FLUSH:
        raise MalformedEvent("a monitor message names its node and lists its steps")
    if isinstance(missed, bool) or not isinstance(missed, int) or not 0 <= missed < 2**31:
        raise MalformedEvent("a monitor message counts what it missed")
    if not steps and not missed:
        return None  # a feed's flush while nothing happened: it tells the feed someone listens
    rebuilt = {"node": node, "steps": [_step(step) for step in steps], "missed": missed}
    return json.dumps(rebuilt, separators=(",", ":"))


def _step(step: Any) -> dict[str, str | None]:
    if not isinstance(step, dict) or set(step) != set(STEP_FIELDS):
        raise MalformedEvent(f"a step of the monitor has the fields {', '.join(STEP_FIELDS)}")
    if not all(step[name] is None or _text(step[name]) for name in STEP_FIELDS):
        raise MalformedEvent("a step's fields are short texts")
    return {name: step[name] for name in STEP_FIELDS}


def _text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT


def _offer(inbox: asyncio.Queue[str], text: str) -> None:
    """Put without waiting: a full inbox drops its oldest message."""
    if inbox.full():
        inbox.get_nowait()
    inbox.put_nowait(text)
