"""How events and requests travel between processes: the channel names (`channels`), the
three event transports behind one protocol (`protocol`; over Redis `pubsub` and `streams`, over
RabbitMQ `rabbitmq`), request and reply over Redis (`rpc`), delivery claims (`claims`) and fault
injection (`faults`)."""

from __future__ import annotations

from redis.asyncio import Redis

from sagashop.transport.channels import Channels
from sagashop.transport.claims import DeliveryClaims
from sagashop.transport.protocol import EventTransport
from sagashop.transport.pubsub import PubSubEvents
from sagashop.transport.rabbitmq import RabbitEvents
from sagashop.transport.signing import Signer
from sagashop.transport.streams import StreamEvents

__all__ = ["TRANSPORTS", "Channels", "DeliveryClaims", "EventTransport", "event_transport"]

TRANSPORTS = ("pubsub", "streams", "rabbitmq")
"""`--bus` choices: how events travel. Requests always use Redis Pub/Sub."""
NO_AMQP_URL = "--bus rabbitmq needs AMQP_URL: amqp://user:password@host:5672/vhost"


def event_transport(
    kind: str,
    redis: Redis,
    channels: Channels,
    consumer: str,
    reclaim_idle: float,
    signer: Signer,
    amqp_url: str | None,
) -> EventTransport:
    """The transport named `kind`; `consumer` names this process in Streams' groups and on
    RabbitMQ's connections."""
    if kind == "streams":
        return StreamEvents(redis, channels, signer, consumer, reclaim_idle)
    if kind == "rabbitmq":
        if amqp_url is None:
            raise ValueError(NO_AMQP_URL)
        return RabbitEvents(amqp_url, channels, signer, consumer)
    return PubSubEvents(redis, channels, DeliveryClaims(redis, signer, consumer), signer)
