"""Retention: the step rows, the replayed (or closed) dead letters and the service's own
per-order records of orders settled more than `--retain` ago are deleted, a small batch at a
time, so that the step tables do not grow for ever (they gain one to three rows per order and
service).

Only what the order service says is settled goes (it owes nothing, and ended before the
cutoff): a step row is what makes a redelivered event replay its outcome instead of acting
twice, and a saga still owed something may need it. What the audit reads (balances, stock,
bags, reservations, payments, orders) is never pruned, so the audit stays exact.

Each table is read oldest first by its id, a batch at a time from where the last batch ended,
so a pass costs a primary-key range however large the table; rows of orders not settled yet are
passed over and looked at again on the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import Q
from tortoise.models import Model

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
    _after: dict[type[Model], int] = field(default_factory=dict)
    """Where each table's next batch starts (after this id); back to 0 once a pass met the
    cutoff, so that rows passed over (their order not settled yet) are looked at again."""

    async def prune(self, now: datetime) -> int:
        """One batch of each table: what of it is old enough and settled is deleted; how many
        rows went."""
        before = now - self.keep
        records = Kept(self.step_log.records, "handled_at")
        gone = await self._batch(records, before, ("published", "outcome"), _published)
        letters = self.step_log.dead_letters.letters
        gone += await letters.filter(
            Q(replayed_at__lt=before) | Q(closed_with__not_isnull=True, updated_at__lt=before)
        ).delete()
        for kept in self.own:
            gone += await self._batch(kept, before)
        if gone:
            service = self.step_log.service
            log.info("%s: pruned %d rows of orders settled before %s", service, gone, before)
        return gone

    async def _batch(
        self,
        table: Kept,
        before: datetime,
        also: Sequence[str] = (),
        may_go: Callable[[dict[str, Any]], bool] = lambda _row: True,
    ) -> int:
        """The next rows of `table` by id: those older than `before`, that `may_go`, of orders
        settled before then, deleted."""
        model = table.model
        head = (
            await model.filter(id__gt=self._after.get(model, 0))
            .order_by("id")
            .limit(BATCH)
            .values("id", "order_id", table.dated_by, *also)
        )
        old = [row for row in head if row[table.dated_by] < before]
        self._after[model] = old[-1]["id"] if old and len(old) == len(head) else 0
        done = [row for row in old if may_go(row)]
        order_ids = sorted({str(row["order_id"]) for row in done})
        ended = set(await self.settled(order_ids, before)) if order_ids else set()
        doomed = [row["id"] for row in done if str(row["order_id"]) in ended]
        return await model.filter(id__in=doomed).delete() if doomed else 0


def _published(row: dict[str, Any]) -> bool:
    """A step row whose outcome the relay has put on the bus, or that emitted nothing."""
    return bool(row["published"]) or row["outcome"] is None
