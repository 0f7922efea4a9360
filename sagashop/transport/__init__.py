"""How events and requests travel between processes: the channel names (`channels`), the
three event transports behind one protocol (`protocol`; over Redis `pubsub` and `streams`, over
RabbitMQ `rabbitmq`), the link that carries requests, replies and the monitor (`link`: over
Redis, or over RabbitMQ when it carries the events), request and reply on it (`rpc`), delivery
claims (`claims`) and fault injection (`faults`)."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from sagashop.transport.channels import Channels
from sagashop.transport.claims import DeliveryClaims
from sagashop.transport.link import Link, RedisLink
from sagashop.transport.protocol import EventTransport
from sagashop.transport.pubsub import PubSubEvents
from sagashop.transport.rabbitmq import Broker, BrokerLink, RabbitEvents
from sagashop.transport.signing import Signer
from sagashop.transport.streams import StreamEvents

__all__ = ["TRANSPORTS", "Bus", "Channels", "DeliveryClaims", "EventTransport", "Link", "connect"]

TRANSPORTS = ("pubsub", "streams", "rabbitmq")
"""`--bus` choices: how events travel. On RabbitMQ requests and the monitor travel by the broker
too, and Redis is needed only for `--rate-limit-store redis`; else they go by Redis Pub/Sub."""
NEEDS_REDIS = ("pubsub", "streams")
NO_AMQP_URL = "--bus rabbitmq needs AMQP_URL: amqp://user:password@host:5672/vhost"


@dataclass(frozen=True)
class Bus:
    """What one process sends and hears by: its events, and its link."""

    events: EventTransport
    link: Link


def connect(
    kind: str,
    redis: Redis | None,
    channels: Channels,
    consumer: str,
    reclaim_idle: float,
    signer: Signer,
    amqp_url: str | None,
) -> Bus:
    """The bus named `kind`; `consumer` names this process in Streams' groups and on
    RabbitMQ's connections."""
    if kind == "rabbitmq":
        if amqp_url is None:
            raise ValueError(NO_AMQP_URL)
        broker = Broker(amqp_url, f"sagashop {channels.namespace} {consumer}")
        return Bus(RabbitEvents(broker, channels, signer), BrokerLink(broker, channels))
    if redis is None:
        raise ValueError(f"--bus {kind} needs Redis")
    claims = DeliveryClaims(redis, signer, consumer)
    link = RedisLink(redis, claims)
    if kind == "streams":
        return Bus(StreamEvents(redis, channels, signer, consumer, reclaim_idle), link)
    return Bus(PubSubEvents(redis, channels, claims, signer), link)
