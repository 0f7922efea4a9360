"""How events and requests travel between processes, over Redis: the channel names
(`channels`), the two event transports behind one protocol (`protocol`, `pubsub`, `streams`),
request and reply (`requests`), delivery claims (`claims`) and fault injection (`faults`)."""

from __future__ import annotations

from redis.asyncio import Redis

from sagashop.transport.channels import Channels
from sagashop.transport.claims import DeliveryClaims
from sagashop.transport.protocol import EventTransport
from sagashop.transport.pubsub import PubSubEvents
from sagashop.transport.signing import Signer
from sagashop.transport.streams import StreamEvents

__all__ = ["TRANSPORTS", "Channels", "DeliveryClaims", "EventTransport", "event_transport"]

TRANSPORTS = ("pubsub", "streams")
"""`--bus` choices: how events travel. Requests always use Pub/Sub."""


def event_transport(
    kind: str,
    redis: Redis,
    channels: Channels,
    consumer: str,
    reclaim_idle: float,
    signer: Signer,
) -> EventTransport:
    """The transport named `kind`; `consumer` names this process in Streams' groups."""
    if kind == "streams":
        return StreamEvents(redis, channels, signer, consumer, reclaim_idle)
    return PubSubEvents(redis, channels, DeliveryClaims(redis, signer, consumer), signer)
