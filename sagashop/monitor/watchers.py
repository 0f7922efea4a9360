"""The listening side of the monitor: one subscription to the monitor channel per process, open
only while a page watches, fanned out to every page's own bounded inbox.

What arrives is checked before a page sees it (a JSON object, no line breaks that would end an
event-stream message early, not oversized); a page that reads too slowly misses messages rather
than holding memory; `close` wakes every page's stream so the server can stop at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

from sagashop.transport.pubsub import Message, Subscription

log = logging.getLogger(__name__)

INBOX_SIZE = 64
MAX_MESSAGE = 1024 * 1024
CLOSED = ""
"""What an inbox gets when the server stops: the stream ends."""


class Watchers:
    """The monitor pages this process serves, and the subscription they share."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis = redis
        self._channel = channel
        self._inboxes: set[asyncio.Queue[str]] = set()
        self._subscription: Subscription | None = None
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
                subscription = Subscription(self._redis, [self._channel], self._hand_out, "monitor")
                await subscription.start()
                self._subscription = subscription

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
        for _channel, data in messages:
            text = data.decode() if isinstance(data, bytes) else str(data)
            if not _well_formed(text):
                log.warning("monitor: dropped a malformed message: %.120r", text)
                continue
            for inbox in self._inboxes:
                _offer(inbox, text)


def _well_formed(text: str) -> bool:
    if len(text) > MAX_MESSAGE or "\n" in text or "\r" in text:
        return False
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: a bomb of nested brackets
        return False
    return isinstance(message, dict) and isinstance(message.get("steps"), list)


def _offer(inbox: asyncio.Queue[str], text: str) -> None:
    """Put without waiting: a full inbox drops its oldest message."""
    if inbox.full():
        inbox.get_nowait()
    inbox.put_nowait(text)
