"""Events on Redis Streams (`--bus streams`): kept by Redis and acknowledged after the step commits.

One stream per event name and one consumer group per service, so the processes that run a
service share its entries. A process reads a batch for a service, hands it to the service's
actor and acknowledges it once the actor has handled it; it reads the next batch only then, which
keeps mailboxes short. Entries that a dead process left unacknowledged are claimed by a live one
after `reclaim_idle` seconds (`--reclaim-idle`) and handled again, which the step log makes
harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from sagashop.events import Event, EventName, MalformedEvent, decode, encode
from sagashop.transport.channels import Channels
from sagashop.transport.protocol import Receive, reconnect_delay
from sagashop.transport.signing import Signer

log = logging.getLogger(__name__)

MAXLEN = 10_000
"""Entries kept per stream (approximately); older ones are trimmed even if a group never read
them, and the order deadline re-drives what that loses."""
BATCH = 100
BLOCK_MS = 1_000

Entry = tuple[str, str, dict[str, str] | None]  # (stream, entry id, fields)


class StreamEvents:
    """The Streams event transport (see the module's docstring)."""

    def __init__(
        self,
        redis: Redis,
        channels: Channels,
        signer: Signer,
        consumer: str,
        reclaim_idle: float = 15.0,
    ) -> None:
        self._redis = redis
        self._channels = channels
        self._signer = signer
        self._consumer = consumer
        self._reclaim_idle_ms = int(reclaim_idle * 1000)
        self._reclaim_every = min(5.0, reclaim_idle / 3)
        self._receive: Receive | None = None
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting_for_entries: set[asyncio.Task[Any]] = set()

    async def publish(self, events: Sequence[Event]) -> list[int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                stream = self._channels.stream(event.name)
                wire = self._signer.sign(stream, encode(event))
                pipe.xadd(stream, {"event": wire}, maxlen=MAXLEN)
            await pipe.execute()
        return [1] * len(events)

    async def start(self, handled: Mapping[str, Collection[EventName]], receive: Receive) -> None:
        self._receive = receive
        for service, events in handled.items():
            streams = [self._channels.stream(name) for name in sorted(events)]
            if not streams:
                continue
            await self._ensure_groups(service, streams)
            self._tasks.append(asyncio.create_task(self._consume(service, streams)))
            self._tasks.append(asyncio.create_task(self._reclaim(service, streams)))

    async def stop(self) -> None:
        """Stop reading; a batch in a service's hands is finished and acknowledged first, a read
        still waiting for entries is cut short."""
        self._stopping.set()
        for reading in self._waiting_for_entries:
            reading.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Nothing of its own: the Redis client is the node's."""

    async def _ensure_groups(self, service: str, streams: list[str]) -> None:
        for stream in streams:
            try:
                await self._redis.xgroup_create(stream, service, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    async def _consume(self, service: str, streams: list[str]) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                reply = await self._read(service, streams)
                failures = 0
                entries = [
                    (s, entry_id, fields) for s, items in reply for entry_id, fields in items
                ]
                if entries:
                    await self._hand_over(service, entries)
            except (RedisError, OSError) as error:
                delay = reconnect_delay(failures)
                failures += 1
                log.warning("streams: %s lost Redis (%s); retrying in %.1fs", service, error, delay)
                await self._pause(delay)
                await self._recreate_groups(service, streams)
            except Exception:
                # The last guard: each entry is checked on its own (`_event_of`), but nothing a
                # batch carries may end this reader, or the service would hear nothing more.
                log.exception("streams: %s: a batch failed; reading on", service)
                await self._pause(reconnect_delay(0))

    async def _read(self, service: str, streams: list[str]) -> Any:
        """New entries, waiting up to BLOCK_MS for some; cancelled by `stop` while it waits
        (what it would have read stays pending and is reclaimed)."""
        reading = asyncio.current_task()
        assert reading is not None
        self._waiting_for_entries.add(reading)
        try:
            return await self._redis.xreadgroup(
                service, self._consumer, dict.fromkeys(streams, ">"), BATCH, BLOCK_MS
            )
        finally:
            self._waiting_for_entries.discard(reading)

    async def _recreate_groups(self, service: str, streams: list[str]) -> None:
        """A Redis that restarted without persistence lost the groups: make them again."""
        try:
            await self._ensure_groups(service, streams)
        except (RedisError, OSError):
            return
        log.info("streams: %s reading again", service)

    async def _reclaim(self, service: str, streams: list[str]) -> None:
        while not await self._pause(self._reclaim_every):
            for stream in streams:
                try:
                    claimed = await self._redis.xautoclaim(
                        stream, service, self._consumer, self._reclaim_idle_ms, "0-0", count=BATCH
                    )
                except (RedisError, OSError):
                    continue
                entries = [(stream, entry_id, fields) for entry_id, fields in claimed[1]]
                if entries:
                    log.warning(
                        "streams: %s took over %d entries of %s left by a dead consumer",
                        service,
                        len(entries),
                        stream,
                    )
                    await self._hand_over(service, entries)

    async def _pause(self, seconds: float) -> bool:
        """Sleep, waking early to stop; True if stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _hand_over(self, service: str, entries: list[Entry]) -> None:
        assert self._receive is not None
        events = [event for event in map(self._event_of, entries) if event is not None]
        if events:
            loop = asyncio.get_running_loop()
            handled: asyncio.Future[None] = loop.create_future()

            def done() -> None:
                loop.call_soon_threadsafe(_settle, handled)

            self._receive(service, events, done)
            await handled
        await self._acknowledge(service, entries)

    def _event_of(self, entry: Entry) -> Event | None:
        """The event of a signed, valid entry; else None, counted (and acknowledged with the
        rest of its batch, so it never sits pending). No age limit: an entry may wait long."""
        stream, entry_id, fields = entry
        try:
            if fields is None:
                raise MalformedEvent("the entry was trimmed before it was read")
            event = decode(self._signer.open(stream, fields.get("event")))
            if self._channels.stream(event.name) != stream:
                raise MalformedEvent(f"a {event.name} event in another event's stream")
            return event
        except Exception as error:
            self._signer.reject(f"{stream} {entry_id}", error, fields)
            return None

    async def _acknowledge(self, service: str, entries: list[Entry]) -> None:
        by_stream: dict[str, list[str]] = {}
        for stream, entry_id, _fields in entries:
            by_stream.setdefault(stream, []).append(entry_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream, ids in by_stream.items():
                    pipe.xack(stream, service, *ids)
                await pipe.execute()
        except (RedisError, OSError) as error:
            log.warning(
                "streams: could not acknowledge %d entries (%s); they will be handled again",
                len(entries),
                error,
            )


def _settle(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)
