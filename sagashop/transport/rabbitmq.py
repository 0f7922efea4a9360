"""Events on RabbitMQ (`--bus rabbitmq`): kept by the broker and acknowledged after the step
commits.

Events are published to one durable topic exchange per namespace, routed by their name. Each
service has one durable quorum queue, bound to the names it handles, which every process that
runs the service consumes: each event reaches one of them. A process hands a service what
arrived together (at most the prefetch, `BATCH`) and acknowledges it once the service's step has
committed; what a process held unacknowledged when it died or lost the broker is delivered
again, which the step log makes harmless. A message that is not a signed event of its routing
key is rejected to the namespace's dead letters, counted and never delivered again; so is one
delivered `DELIVERY_LIMIT` times. `publish` waits for the broker's confirms, and publishes as
mandatory: an event no queue is bound for answers 0, and the outbox sends it again.

The connection comes back by itself after the broker (or the network) drops it, and declares
the exchanges, queues and consumers again; what was in flight on it is delivered again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Collection, Iterable, Mapping, Sequence
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ExchangeType,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from pamqp.commands import Basic

from sagashop.events import Event, EventName, MalformedEvent, decode, encode
from sagashop.transport.channels import Channels
from sagashop.transport.link import Arrived
from sagashop.transport.protocol import Receive
from sagashop.transport.signing import Signer

log = logging.getLogger(__name__)

BATCH = 100
"""Deliveries a service's consumer may hold unacknowledged (its prefetch): its largest batch."""
DELIVERY_LIMIT = 20
"""Deliveries of one message before its queue gives up on it and dead-letters it."""
DEAD_LETTERS_KEPT = 10_000
"""Dead letters kept per namespace (the oldest go first): a flood of garbage cannot fill the
broker."""
RECONNECT_EVERY = 1.0
CONFIRM_WITHIN = 10.0
ANSWER_WITHIN = 5.0
"""Seconds to wait for the broker to take an acknowledgement, a cancel or a close: a stop must
not hang on a broker that is away."""
LOST = (AMQPError, ChannelInvalidStateError, ConnectionError)
"""What a channel or connection that went away raises."""


class Broker:
    """One process's connection to RabbitMQ, shared by its events and its link: opened on first
    use, it comes back by itself after the broker (or the network) drops it."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self.name = name
        """How the broker lists the connection (`rabbitmqctl list_connections`)."""
        self._connection: AbstractRobustConnection | None = None
        self._connecting = asyncio.Lock()

    async def connected(self) -> AbstractRobustConnection:
        async with self._connecting:
            if self._connection is None:
                connection = await aio_pika.connect_robust(
                    self._url,
                    client_properties={"connection_name": self.name},
                    reconnect_interval=RECONNECT_EVERY,
                )
                connection.reconnect_callbacks.add(_reconnected)
                self._connection = connection
            return self._connection

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()


def _reconnected(connection: Any) -> None:
    log.warning("rabbitmq: reconnected to the broker; consuming again")


class RabbitEvents:
    """The RabbitMQ event transport (see the module's docstring)."""

    def __init__(self, broker: Broker, channels: Channels, signer: Signer) -> None:
        self._broker = broker
        self._channels = channels
        self._signer = signer
        self._exchange: AbstractExchange | None = None
        self._declaring = asyncio.Lock()
        self._queues: list[ServiceQueue] = []

    async def start(self, handled: Mapping[str, Collection[EventName]], receive: Receive) -> None:
        await self._published_to()
        for service, names in handled.items():
            if names:
                queue = ServiceQueue(service, self._channels, self._signer, receive)
                await queue.open(await self._broker.connected(), sorted(names))
                self._queues.append(queue)

    async def stop(self) -> None:
        """Stop taking deliveries; a batch in a service's hands is finished and acknowledged
        first, and what is left unacknowledged goes back to the queues for other processes."""
        await asyncio.gather(*(queue.stop() for queue in self._queues))

    async def close(self) -> None:
        await self._broker.close()

    async def publish(self, events: Sequence[Event]) -> list[int]:
        """1 for each event the broker confirmed it routed to a queue, 0 for one it could not
        route or refused; raises if none went out because the broker is away."""
        exchange = await self._published_to()
        sent = await asyncio.gather(
            *(self._publish_one(exchange, event) for event in events), return_exceptions=True
        )
        lost = [outcome for outcome in sent if isinstance(outcome, Exception)]
        if lost and len(lost) == len(sent):
            raise lost[0]
        return [int(isinstance(outcome, Basic.Ack)) for outcome in sent]

    async def _publish_one(self, exchange: AbstractExchange, event: Event) -> Any:
        key = self._channels.routing_key(event.name)
        message = aio_pika.Message(
            self._signer.sign(key, encode(event)).encode(),
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        return await exchange.publish(message, key, mandatory=True, timeout=CONFIRM_WITHIN)

    async def _published_to(self) -> AbstractExchange:
        """The events' exchange, declared on first use: by `start`, or by the relay's first
        publish, whichever comes first."""
        async with self._declaring:
            if self._exchange is None:
                self._exchange = await self._declare_exchanges(await self._broker.connected())
            return self._exchange

    async def _declare_exchanges(self, connection: AbstractRobustConnection) -> AbstractExchange:
        """The events' exchange, on a channel in confirm mode (a publish returns once the broker
        has the message), and the dead letters' exchange and queue."""
        channel = await connection.channel(publisher_confirms=True)
        dead = await channel.declare_exchange(
            self._channels.dead_letters(), ExchangeType.FANOUT, durable=True
        )
        kept = await channel.declare_queue(
            self._channels.dead_letters(),
            durable=True,
            arguments={"x-max-length": DEAD_LETTERS_KEPT},
        )
        await kept.bind(dead)
        return await channel.declare_exchange(
            self._channels.exchange(), ExchangeType.TOPIC, durable=True
        )


class BrokerLink:
    """The link (requests, replies, the monitor) over RabbitMQ: a direct exchange routes each
    channel's messages; a shared channel is a queue of its own that every listener consumes
    (each message to one of them), the others a queue of the listener's own. Nothing is kept:
    the queues go with their listeners, and a message nobody listens for is returned (0)."""

    def __init__(self, broker: Broker, channels: Channels) -> None:
        self._broker = broker
        self._channels = channels
        self._exchange: AbstractExchange | None = None
        self._declaring = asyncio.Lock()

    async def listen(
        self, channels: Collection[str], arrived: Arrived, name: str, shared: Collection[str] = ()
    ) -> LinkListener:
        await self._sent_by()
        listener = LinkListener(arrived, name)
        await listener.open(await self._broker.connected(), self._channels, channels, shared)
        return listener

    async def send(self, channel: str, wires: Sequence[str]) -> int:
        exchange = await self._sent_by()
        sent = await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(wire.encode()), channel, mandatory=True, timeout=CONFIRM_WITHIN
                )
                for wire in wires
            )
        )
        return int(isinstance(sent[0], Basic.Ack))

    async def claim(self, keys: Sequence[str]) -> list[bool]:
        return [True] * len(keys)

    async def ping(self) -> Any:
        connection = await self._broker.connected()
        if connection.is_closed:
            raise ConnectionError("the connection to RabbitMQ is closed")
        return True

    async def _sent_by(self) -> AbstractExchange:
        async with self._declaring:
            if self._exchange is None:
                channel = await (await self._broker.connected()).channel(publisher_confirms=True)
                self._exchange = await channel.declare_exchange(
                    self._channels.link(), ExchangeType.DIRECT
                )
            return self._exchange


class LinkListener:
    """One listener's queues on the link's exchange, and its consumers."""

    def __init__(self, arrived: Arrived, name: str) -> None:
        self._arrived = arrived
        self._name = name
        self._channel: AbstractChannel | None = None

    async def open(
        self,
        connection: AbstractRobustConnection,
        names: Channels,
        channels: Collection[str],
        shared: Collection[str],
    ) -> None:
        channel = self._channel = await connection.channel()
        own = [name for name in channels if name not in shared]
        queues = [(name, [name], False) for name in shared]
        if own:
            queues.append((names.listener(self._name), own, True))
        for queue_name, keys, exclusive in queues:
            queue = await channel.declare_queue(queue_name, exclusive=exclusive, auto_delete=True)
            for key in keys:
                await queue.bind(names.link(), key)
            await queue.consume(self._deliver, no_ack=True)

    async def stop(self) -> None:
        if self._channel is not None:
            await _settle(self._channel.close(), "close its channel", self._name)

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        try:
            await self._arrived([(message.routing_key or "", message.body)])
        except Exception:
            # The last guard: whatever one message carries may not end this listener.
            log.exception("rabbitmq: %s: a message failed; listening on", self._name)


class ServiceQueue:
    """One service's queue as this process consumes it: what arrives is buffered, and handed to
    the service in batches, one at a time."""

    def __init__(self, service: str, channels: Channels, signer: Signer, receive: Receive) -> None:
        self._service = service
        self._channels = channels
        self._signer = signer
        self._receive = receive
        self._name = channels.queue(service)
        self._arrived: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._channel: AbstractChannel | None = None
        self._consuming: tuple[AbstractQueue, str] | None = None
        self._taking: asyncio.Task[None] | None = None
        self._handing_over = False
        self._stopping = False

    async def open(self, connection: AbstractRobustConnection, names: list[str]) -> None:
        """Declare the queue, bind it to `names` and consume it, BATCH deliveries at most."""
        channel = self._channel = await connection.channel()
        await channel.set_qos(prefetch_count=BATCH)
        queue = await channel.declare_queue(
            self._name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": self._channels.dead_letters(),
            },
        )
        for name in names:
            await queue.bind(self._channels.exchange(), self._channels.routing_key(name))
        self._consuming = queue, await queue.consume(self._arrive)
        self._taking = asyncio.create_task(self._take(), name=f"rabbitmq {self._service}")

    async def stop(self) -> None:
        """No more deliveries; the batch in the service's hands, if any, finished first; then
        the channel closed, which gives back what is left unacknowledged."""
        self._stopping = True
        if self._consuming is not None and self._channel and not self._channel.is_closed:
            queue, tag = self._consuming
            await _settle(queue.cancel(tag), "stop consuming", self._service)
        if self._taking is not None:
            if self._handing_over:
                log.info("rabbitmq: %s: stopping once its batch in hand is handled", self._service)
            else:
                self._taking.cancel()
            await asyncio.gather(self._taking, return_exceptions=True)
        if self._channel is not None:
            await _settle(self._channel.close(), "close its channel", self._service)

    async def _arrive(self, message: AbstractIncomingMessage) -> None:
        self._arrived.put_nowait(message)

    async def _take(self) -> None:
        while not self._stopping:
            batch = await self._next_batch()
            self._handing_over = True
            try:
                await self._hand_over(batch)
            except Exception:
                # The last guard: each message is checked on its own (`_event_of`), but nothing
                # a batch carries may end this consumer, or the service would hear nothing more.
                log.exception("rabbitmq: %s: a batch failed; consuming on", self._service)
            finally:
                self._handing_over = False

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        """What arrived together: waits for one delivery, then takes those already here."""
        batch = [await self._arrived.get()]
        await asyncio.sleep(0)  # deliveries read from the same frames arrive on this turn
        while len(batch) < BATCH and not self._arrived.empty():
            batch.append(self._arrived.get_nowait())
        return batch

    async def _hand_over(self, batch: list[AbstractIncomingMessage]) -> None:
        """Refuse what is not a signed event; hand the service the rest, and acknowledge it once
        the service has handled it (or give it back to the queue if it could not be handed)."""
        taken: list[AbstractIncomingMessage] = []
        events: list[Event] = []
        for message in filter(_still_held, batch):
            event = self._event_of(message)
            if event is None:
                await _settle(message.reject(requeue=False), "dead-letter a message", self._service)
            else:
                taken.append(message)
                events.append(event)
        if not events:
            return
        try:
            await self._handled(events)
        except Exception:
            given_back = _in_turn(message.reject(requeue=True) for message in taken)
            await _settle(given_back, f"give back {len(taken)} messages", self._service)
            raise
        acknowledged = _in_turn(message.ack() for message in taken)
        await _settle(acknowledged, f"acknowledge {len(taken)} messages", self._service)

    async def _handled(self, events: list[Event]) -> None:
        """Hand the events over; return once the service's step committed (`done` is called
        from the service's thread)."""
        loop = asyncio.get_running_loop()
        handled: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            loop.call_soon_threadsafe(_resolve, handled)

        self._receive(self._service, events, done)
        await handled

    def _event_of(self, message: AbstractIncomingMessage) -> Event | None:
        """The event of a signed, valid message of its routing key; else None, counted. The
        signature is checked before anything is parsed. No age limit: a message may wait long
        in its queue."""
        key = message.routing_key or ""
        try:
            event = decode(self._signer.open(key, message.body))
            if self._channels.routing_key(event.name) != key:
                raise MalformedEvent(f"a {event.name} event routed as {key!r}")
            return event
        except Exception as error:
            self._signer.reject(f"{self._name} {key}", error, message.body)
            return None


async def _settle(answer: Awaitable[Any], what: str, service: str) -> None:
    """Say something to the broker; what cannot be said because the channel is gone is not
    needed: the broker delivers again what this channel held."""
    try:
        async with asyncio.timeout(ANSWER_WITHIN):
            await answer
    except (*LOST, TimeoutError) as error:
        log.warning("rabbitmq: %s: could not %s (%r)", service, what, error)


async def _in_turn(answers: Iterable[Awaitable[Any]]) -> None:
    for answer in answers:
        await answer


async def forget_namespace(url: str, channels: Channels, services: Iterable[str]) -> None:
    """Delete what a system of the namespace declared on the broker: durable, its queues and
    exchanges outlive it (a bench's or a test's, whose namespace is never used again)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for service in services:
            await channel.queue_delete(channels.queue(service))
        await channel.queue_delete(channels.dead_letters())
        await channel.exchange_delete(channels.exchange())
        await channel.exchange_delete(channels.dead_letters())
    finally:
        await connection.close()


def _still_held(message: AbstractIncomingMessage) -> bool:
    """Whether the channel the message came on is open: one that closed (the connection
    dropped) gave its messages back to the queue, and they come again."""
    try:
        return not message.channel.is_closed
    except ChannelInvalidStateError:
        return False


def _resolve(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)
