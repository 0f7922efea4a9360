"""The publishing side of the monitor: the steps this process takes, sent to the monitor channel
a batch at a time, and only while some monitor page listens.

Signed like every message on the bus (`sagashop.transport.signing`): whoever reaches Redis
cannot show an operator's page steps that were never taken.

Every flush, four times a second, is one message on the link, empty while nobody watches: how
many listeners took it says whether to note steps for the next one (the pages never see an
empty one). Whatever the load a flush carries at most `MAX_PER_FLUSH` steps: past that the page
is told how many it missed, so a bench run cannot flood the browser or this process.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from sagashop.events import Event, kind_of, utc_now
from sagashop.saga.observers import Committed
from sagashop.transport.link import LINK_AWAY, Link
from sagashop.transport.signing import Signer

log = logging.getLogger(__name__)

FLUSH_EVERY = 0.25
MAX_PER_FLUSH = 500


class StepFeed:
    """Steps taken in this process, for whoever watches the monitor channel."""

    def __init__(self, link: Link, channel: str, node_id: str, signer: Signer) -> None:
        self._link = link
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
        """Flush what was noted, and learn whether anyone listens, every `FLUSH_EVERY` s."""
        while True:
            try:
                self._listening = await self._flush()
            except LINK_AWAY as error:
                log.debug("monitor feed: %s", error)
            await asyncio.sleep(FLUSH_EVERY)

    async def _flush(self) -> bool:
        """Send what was noted (nothing, while nobody listens); whether anyone took it."""
        steps, missed = self._pending, self._missed
        self._pending, self._missed = [], 0
        message = {"node": self._node_id, "steps": steps, "missed": missed}
        body = json.dumps(message, separators=(",", ":"))
        wire = self._signer.sign(self._channel, body)
        return await self._link.send(self._channel, [wire]) > 0
