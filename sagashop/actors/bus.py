"""The bus bridge: the only code that touches Redis messaging.

Events go one of two ways. With Pub/Sub (the default) every event name is a channel: a process
subscribes to the events its services handle and hands each service what arrived, several events
at once when they came together. Pub/Sub gives every subscriber every message, so when two
processes run the same service each delivery is claimed first (SET NX on its delivery id) and
only the winner handles it. Pub/Sub keeps nothing: an event published while nobody listens is
gone, which the outbox sweep and the order deadline make good. With Streams (`--bus streams`)
every event name is a stream with one consumer group per service; an entry is acknowledged only
after its step has committed, and entries a dead process left pending are claimed by another.

Asks always use Pub/Sub: a request goes to the service's request channel, is claimed like an
event, and the answer comes back on the asking process's reply channel, matched by request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from sagashop.errors import SagashopError, Unavailable, error_from_dict
from sagashop.events import Event, EventName, MalformedEvent, new_id

if TYPE_CHECKING:
    from sagashop.actors.streams import StreamEvents

log = logging.getLogger(__name__)

Done = Callable[[], None]
"""Called (from any thread) once a service has handled a batch: Streams acknowledges it then."""
Deliver = Callable[[str, list[Event], Done | None], None]
"""Hands a service the events it won, in arrival order."""
Serve = Callable[[str, str, dict[str, Any]], Awaitable[Any]]
"""Answers a request (service, request name, arguments) with a JSON-able value."""

MAX_BATCH = 256
RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class Faults:
    """Fault injection for chaos runs, off unless asked for: drop a share of published events
    (as if lost after Redis took them) and publish another share twice; `only` limits it to
    some events."""

    drop: float = 0.0
    duplicate: float = 0.0
    only: frozenset[EventName] | None = None

    def copies(self, event: Event, draw: float) -> int:
        if self.only is not None and event.name not in self.only:
            return 1
        if draw < self.drop:
            return 0
        return 2 if draw < self.drop + self.duplicate else 1


@dataclass
class FaultCounts:
    dropped: int = 0
    duplicated: int = 0


@dataclass(frozen=True)
class _Route:
    kind: str  # "event", "ask" or "reply"
    target: str = ""  # the event name or the service


def reconnect_delay(failures: int) -> float:
    return RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]


class Bus:
    """One process's connection to the others."""

    def __init__(
        self,
        redis: Redis,
        namespace: str,
        node_id: str,
        streams: StreamEvents | None = None,
        faults: Faults = Faults(),
        ask_timeout: float = 10.0,
        claim_ttl_ms: int = 60_000,
    ) -> None:
        """Events travel on `streams` when given, else on Pub/Sub."""
        self._redis = redis
        self._namespace = namespace
        self._reply_channel = f"{namespace}:reply:{node_id}"
        self._streams = streams
        self.faults = faults
        """Can be switched while running (the chaos run and tests lose events on purpose)."""
        self._draw = random.Random()
        self.fault_counts = FaultCounts()
        self._ask_timeout = ask_timeout
        self._claim_ttl_ms = claim_ttl_ms
        self._routes: dict[str, _Route] = {}
        self._consumers: dict[str, list[str]] = {}
        self._deliver: Deliver = _nobody
        self._serve: Serve | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._asks: dict[str, asyncio.Future[Any]] = {}
        self._answers: set[asyncio.Task[None]] = set()

    async def start(
        self, handled: Mapping[str, Collection[EventName]], deliver: Deliver, serve: Serve
    ) -> None:
        """Listen for the events and requests of the services in `handled`."""
        self._deliver, self._serve = deliver, serve
        self._routes = {self._reply_channel: _Route("reply")}
        for service, events in handled.items():
            self._routes[self._ask_channel(service)] = _Route("ask", service)
            if self._streams is None:
                for name in events:
                    self._routes[self._event_channel(name)] = _Route("event", name)
                    self._consumers.setdefault(name, []).append(service)
        self._pubsub = await self._subscribe()
        self._listener = asyncio.create_task(self._listen(), name="bus-listener")
        if self._streams is not None:
            await self._streams.start(handled, deliver)

    async def stop(self) -> None:
        """Stop listening; asks still waiting fail as unavailable."""
        if self._streams is not None:
            await self._streams.stop()
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await asyncio.gather(*self._answers, return_exceptions=True)
        await _close_quietly(self._pubsub)
        for answer in self._asks.values():
            if not answer.done():
                answer.set_exception(Unavailable("this process is shutting down"))

    async def publish(self, events: Sequence[Event]) -> list[int]:
        """Publish in one round trip; returns how many receivers took each event (for Pub/Sub,
        the processes subscribed; a dropped event counts as taken, as if lost after Redis)."""
        copies = [self.faults.copies(event, self._draw.random()) for event in events]
        self.fault_counts.dropped += copies.count(0)
        self.fault_counts.duplicated += copies.count(2)
        sent = [event for event, n in zip(events, copies, strict=True) for _ in range(n)]
        if self._streams is not None:
            received = await self._streams.publish(sent)
        else:
            received = await self._publish_pubsub(sent)
        taken = iter(received)
        return [1 if n == 0 else max(next(taken) for _ in range(n)) for n in copies]

    async def _publish_pubsub(self, events: Sequence[Event]) -> list[int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(self._event_channel(event.name), delivery(event))
            return [int(n) for n in await pipe.execute()]

    async def ask(self, service: str, name: str, args: Mapping[str, Any]) -> Any:
        """Ask whichever process runs `service`, and wait for its answer."""
        request_id = new_id()
        answer = asyncio.get_running_loop().create_future()
        self._asks[request_id] = answer
        request = {"id": request_id, "reply_to": self._reply_channel, "name": name, "args": args}
        try:
            if not await self._redis.publish(self._ask_channel(service), json.dumps(request)):
                raise Unavailable(f"no process runs the {service} service")
            async with asyncio.timeout(self._ask_timeout):
                return await answer
        except TimeoutError:
            raise Unavailable(
                f"the {service} service did not answer within {self._ask_timeout:g}s"
            ) from None
        except RedisError as error:
            raise Unavailable(f"the message bus is unreachable ({error})") from None
        finally:
            self._asks.pop(request_id, None)

    def _event_channel(self, name: str) -> str:
        return f"{self._namespace}:event:{name}"

    def _ask_channel(self, service: str) -> str:
        return f"{self._namespace}:ask:{service}"

    async def _subscribe(self) -> PubSub:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(*self._routes)
        return pubsub

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._subscribe()
                    log.warning("bus: reconnected to Redis and subscribed again")
                failures = 0
                await self._pump(self._pubsub)
            except (RedisError, OSError) as error:
                delay = reconnect_delay(failures)
                failures += 1
                log.warning("bus: lost Redis (%s); reconnecting in %.1fs", error, delay)
                await _close_quietly(self._pubsub)
                self._pubsub = None
                await asyncio.sleep(delay)

    async def _pump(self, pubsub: PubSub) -> None:
        while True:
            first = await pubsub.get_message(timeout=1.0)
            batch = [first] if first else []
            while batch and len(batch) < MAX_BATCH:
                more = await pubsub.get_message(timeout=0)
                if more is None:
                    break
                batch.append(more)
            await self._dispatch([m for m in batch if m["type"] == "message"])

    async def _dispatch(self, messages: list[dict[str, Any]]) -> None:
        claims: list[tuple[str, str, Any]] = []  # (claim key, service, event or request)
        for message in messages:
            route = self._routes.get(message["channel"])
            try:
                body = json.loads(message["data"])
                if route is None:
                    continue
                if route.kind == "reply":
                    self._resolve(body)
                elif route.kind == "ask":
                    claims.append((self._claim_key(route.target, body["id"]), route.target, body))
                else:
                    event = Event.from_dict(body["event"])
                    for service in self._consumers[event.name]:
                        claims.append((self._claim_key(service, body["delivery"]), service, event))
            except (ValueError, KeyError, TypeError, MalformedEvent) as error:
                log_malformed(message["channel"], error, message["data"])
        if claims:
            won = await self._claim([key for key, _, _ in claims])
            self._hand_out(
                [(service, work) for (_, service, work), ok in zip(claims, won, strict=True) if ok]
            )

    def _claim_key(self, service: str, delivery_id: str) -> str:
        return f"{self._namespace}:claim:{service}:{delivery_id}"

    async def _claim(self, keys: list[str]) -> list[bool]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.set(key, 1, nx=True, px=self._claim_ttl_ms)
            return [bool(ok) for ok in await pipe.execute()]

    def _hand_out(self, won: list[tuple[str, Any]]) -> None:
        events: dict[str, list[Event]] = {}
        for service, work in won:
            if isinstance(work, Event):
                events.setdefault(service, []).append(work)
            else:
                task = asyncio.create_task(self._answer(service, work))
                self._answers.add(task)
                task.add_done_callback(self._answers.discard)
        for service, batch in events.items():
            self._deliver(service, batch, None)

    async def _answer(self, service: str, request: dict[str, Any]) -> None:
        assert self._serve is not None
        try:
            reply = {"value": await self._serve(service, request["name"], request["args"])}
        except SagashopError as error:
            reply = {"error": error.to_dict()}
        except Exception:
            log.exception("bus: %s.%s failed", service, request.get("name"))
            reply = {"error": SagashopError(f"the {service} service failed").to_dict()}
        body = json.dumps({"id": request["id"], **reply})
        try:
            await self._redis.publish(request["reply_to"], body)
        except RedisError as error:
            log.warning("bus: could not answer %s.%s (%s)", service, request.get("name"), error)

    def _resolve(self, reply: dict[str, Any]) -> None:
        answer = self._asks.get(reply["id"])
        if answer is None or answer.done():
            return
        if "error" in reply:
            answer.set_exception(error_from_dict(reply["error"]))
        else:
            answer.set_result(reply["value"])


def delivery(event: Event) -> str:
    """An event as it travels: with a delivery id of its own, so each publish is claimed anew."""
    return json.dumps({"delivery": new_id(), "event": event.to_dict()}, separators=(",", ":"))


def log_malformed(where: str, error: Exception, raw: Any) -> None:
    log.error("bus: dropped a malformed message on %s (%s): %.200s", where, error, raw)


def _nobody(service: str, events: list[Event], done: Done | None) -> None:
    raise RuntimeError("the bus was not started")


async def _close_quietly(pubsub: PubSub | None) -> None:
    if pubsub is not None:
        with contextlib.suppress(RedisError, OSError):
            await pubsub.aclose()
