"""The publishing side of the monitor: the steps this process takes, sent to the monitor channel
a batch at a time, and only while some monitor page listens.

Signed like every message on the bus (`sagashop.transport.signing`): whoever reaches Redis
cannot show an operator's page steps that were never taken.

Nobody watching costs a `PUBSUB NUMSUB` four times a second; watching adds one publish per flush
whatever the load, with at most `MAX_PER_FLUSH` steps in it: past that the page is
told how many it missed, so a bench run cannot flood the browser or this process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from sagashop.events import Event, kind_of, utc_now
from sagashop.saga.observers import Committed
from sagashop.transport.signing import Signer

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.25
MAX_PER_FLUSH = 500


class StepFeed:
    """Steps taken in this process, for whoever watches the monitor channel."""

    def __init__(self, redis: Redis, channel: str, node_id: str, signer: Signer) -> None:
        self._redis = redis
        self._channel = channel
        self._node_id = node_id
        self._signer = signer
        self._listening = False
        self._pending: list[dict[str, Any]] = []
        self._missed = 0

    @property
    def listening(self) -> bool:
        """Whether a monitor page listened when last looked (a quarter second ago at most)."""
        return self._listening

    def committed(self, batch: Committed) -> None:
        """Note the steps the batch took, while a page listens."""
        if self._listening:
            for seen in batch.steps:
                if seen.fresh:
                    self.taken(batch.service, seen.order_id, seen.step, seen.handled, seen.outcome)

    def taken(
        self, service: str, order_id: str, step: str, handled: str, outcome: Event | None
    ) -> None:
        """Note a committed step (on the loop, after its transaction): a list append at most."""
        if len(self._pending) >= MAX_PER_FLUSH:
            self._missed += 1
            return
        emitted = outcome.name if outcome else None
        self._pending.append(
            {
                "orderId": order_id,
                "service": service,
                "step": step,
                "handled": handled,
                "event": emitted,
                "kind": kind_of(emitted or handled),
                "reason": outcome.reason if outcome else None,
                "at": utc_now(),
            }
        )

    async def run(self) -> None:
        """Look whether anyone listens and flush what was noted, every `FLUSH_EVERY` seconds."""
        while True:
            try:
                self._listening = await self._anyone_listens()
                await self._flush()
            except (RedisError, OSError) as error:
                log.debug("monitor feed: %s", error)
                self._pending.clear()
            await asyncio.sleep(FLUSH_EVERY)

    async def _anyone_listens(self) -> bool:
        ((_channel, listeners),) = await self._redis.pubsub_numsub(self._channel)
        if not listeners:
            self._pending.clear()
        return int(listeners) > 0

    async def _flush(self) -> None:
        if not self._pending and not self._missed:
            return
        steps, missed = self._pending, self._missed
        self._pending, self._missed = [], 0
        message = {"node": self._node_id, "steps": steps, "missed": missed}
        body = json.dumps(message, separators=(",", ":"))
        await self._redis.publish(self._channel, self._signer.sign(self._channel, body))
