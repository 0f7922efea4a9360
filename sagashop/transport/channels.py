"""Every Redis key and channel, and every RabbitMQ exchange and queue, the system uses, under
one namespace (`--namespace`), so that several systems (the tests run many) share one Redis and
one broker without seeing each other."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Channels:
    namespace: str

    def event(self, name: str) -> str:
        """The Pub/Sub channel of one event name."""
        return f"{self.namespace}:event:{name}"

    def stream(self, name: str) -> str:
        """The stream of one event name (`--bus streams`)."""
        return f"{self.namespace}:stream:{name}"

    def exchange(self) -> str:
        """The topic exchange every event is published to (`--bus rabbitmq`)."""
        return f"{self.namespace}:events"

    def routing_key(self, name: str) -> str:
        """What routes one event name on the exchange, and what its messages are signed for:
        the name itself (the signature covers the namespace)."""
        return name

    def queue(self, service: str) -> str:
        """The queue of one service (`--bus rabbitmq`), shared by every process that runs it."""
        return f"{self.namespace}:queue:{service}"

    def dead_letters(self) -> str:
        """The exchange, and the queue behind it, that keep the messages a service's queue
        refused (`--bus rabbitmq`)."""
        return f"{self.namespace}:dead"

    def link(self) -> str:
        """The exchange requests, replies and monitor messages are routed by, by channel
        (`--bus rabbitmq`)."""
        return f"{self.namespace}:link"

    def listener(self, name: str) -> str:
        """The queue of one listener of the link (`--bus rabbitmq`), gone with it."""
        return f"{self.namespace}:listener:{name}:{uuid.uuid4().hex[:12]}"

    def requests_to(self, service: str) -> str:
        """Where requests to a service go, whichever process runs it."""
        return f"{self.namespace}:ask:{service}"

    def reply(self, node_id: str) -> str:
        """Where answers to one process's requests come back."""
        return f"{self.namespace}:reply:{node_id}"

    def claim(self, service: str, delivery_id: str) -> str:
        """The key that says which process of a service took one Pub/Sub delivery."""
        return f"{self.namespace}:claim:{service}:{delivery_id}"

    def rate_limits(self) -> str:
        """The prefix of the rate limit's counts per caller (`--rate-limit-store redis`)."""
        return f"{self.namespace}:ratelimit"

    def monitor(self) -> str:
        """Where processes publish the steps they take while a monitor page watches."""
        return f"{self.namespace}:monitor"
