"""Retention: the step rows, the replayed dead letters and the service's own per-order records
of orders settled more than `--retain` ago are deleted, a small batch at a time, so that the
step tables do not grow for ever (they gain one to three rows per order and service).

Only what the order service says is settled goes (it owes nothing, and ended before the
cutoff): a step row is what makes a redelivered event replay its outcome instead of acting
twice, and a saga still owed something may need it. What the audit reads (balances, stock,
bags, reservations, payments, orders) is never pruned, so the audit stays exact.

The step rows are read oldest first by their id, a batch at a time from where the last batch
ended, so a pass costs a primary-key range however large the table; rows of orders not settled
yet are passed over and looked at again on the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sagashop.saga.declare import Kept
from sagashop.saga.steplog import StepLog

log = logging.getLogger(__name__)

PRUNE_EVERY = 60.0
"""Seconds between two batches of one service's pruning."""
BATCH = 500

Settled = Callable[[Sequence[str], datetime], Awaitable[Sequence[str]]]
"""Which of these orders owe nothing and ended before the moment (the order service knows)."""


@dataclass
class Retention:
    """One service's pruning."""

    step_log: StepLog
    keep: timedelta
    settled: Settled
    own: Sequence[Kept] = ()
    _after: int = 0
    """The id the next batch of step rows starts after; back to 0 once a pass met the cutoff."""

    async def prune(self, now: datetime) -> int:
        """One batch: what of it is old enough and settled is deleted; how many rows went."""
        before = now - self.keep
        gone = await self._step_rows(before)
        letters = self.step_log.dead_letters.letters
        gone += await letters.filter(replayed_at__lt=before).delete()
        for kept in self.own:
            gone += await self._own_rows(kept, before)
        if gone:
            service = self.step_log.service
            log.info("%s: pruned %d rows of orders settled before %s", service, gone, before)
        return gone

    async def _step_rows(self, before: datetime) -> int:
        records = self.step_log.records
        head = (
            await records.filter(id__gt=self._after)
            .order_by("id")
            .limit(BATCH)
            .values("id", "order_id", "handled_at", "published", "outcome")
        )
        old = [row for row in head if row["handled_at"] < before]
        self._after = old[-1]["id"] if len(old) == len(head) and old else 0
        done = [row for row in old if row["published"] or row["outcome"] is None]
        ended = set(await self._settled({str(row["order_id"]) for row in done}, before))
        doomed = [row["id"] for row in done if str(row["order_id"]) in ended]
        return await records.filter(id__in=doomed).delete() if doomed else 0

    async def _own_rows(self, kept: Kept, before: datetime) -> int:
        dated = {f"{kept.dated_by}__lt": before}
        rows = await kept.model.filter(**dated).order_by("id").limit(BATCH).values("id", "order_id")
        ended = set(await self._settled({str(row["order_id"]) for row in rows}, before))
        doomed = [row["id"] for row in rows if str(row["order_id"]) in ended]
        return await kept.model.filter(id__in=doomed).delete() if doomed else 0

    async def _settled(self, order_ids: set[str], before: datetime) -> Sequence[str]:
        return await self.settled(sorted(order_ids), before) if order_ids else []
