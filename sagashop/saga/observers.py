"""Who hears of committed steps: the outbox's relay, the reads waiting for an order's next step,
the monitor's feed, the step's log line. The step log keeps to its one job (claim, act, record,
in one transaction) and tells them afterwards; which of them a process has is decided where it
is wired (`sagashop.bootstrap`). One that raises is logged and counted, and the rest are still
told: none can undo a commit or silence another.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Protocol

from sagashop.events import Event

log = logging.getLogger(__name__)


class Outbox(Protocol):
    """Where one service keeps what its steps emitted (its `StepLog`), as the relay needs it."""

    service: str

    async def unpublished(self, older_than: datetime, limit: int) -> list[tuple[int, Event]]: ...

    async def count_unpublished(self) -> int: ...

    async def mark_published(self, ids: Sequence[int]) -> None: ...


@dataclass(frozen=True)
class StepSeen:
    """One step of a committed batch, in the order the batch met it."""

    order_id: str
    step: str
    handled: str
    """The event's name, or what else made the step (a command, the deadline)."""
    event_id: str | None
    outcome: Event | None
    record_id: int | None
    """Its step row, where the outcome is kept until published (None: no row, see `failed`)."""
    fresh: bool
    """Taken by this batch; False where it was taken before (or earlier in the same batch) and
    its recorded outcome is given again."""
    failed: bool = False
    """Given up on: its event is kept as a dead letter."""
    request_id: str | None = None
    """The HTTP request that started the purchase (`X-Request-Id`), as its events carry it."""


@dataclass(frozen=True)
class Committed:
    """A batch, once its transaction committed."""

    outbox: Outbox
    steps: tuple[StepSeen, ...]

    @property
    def service(self) -> str:
        return self.outbox.service


class Observer(Protocol):
    def committed(self, batch: Committed) -> None:
        """Called on the loop, right after the commit; must not wait."""


class Observers:
    """Several observers, told in turn."""

    def __init__(
        self, observers: Sequence[Observer], failed: Callable[[str], None] | None = None
    ) -> None:
        self._observers = tuple(observers)
        self._failed = failed

    def committed(self, batch: Committed) -> None:
        for observer in self._observers:
            try:
                observer.committed(batch)
            except Exception:
                name = type(observer).__name__
                log.exception("%s: %s failed to take a committed batch", batch.service, name)
                if self._failed is not None:
                    self._failed(name)


class StepLines:
    """The one log line of each step taken, taken before, or given up on, at INFO, wired in
    only with `--log-steps on` (hundreds of steps a second would otherwise fill the log); its
    facts as fields of their own for the JSON log format, the purchase's request id among them,
    so that one grep finds a purchase from its HTTP request to its last step."""

    def committed(self, batch: Committed) -> None:
        logger = _service_log(batch.service)
        if not logger.isEnabledFor(logging.INFO):
            return
        for seen in batch.steps:
            outcome = _outcome(seen)
            fields = {"order_id": seen.order_id, "event_id": seen.event_id}
            logger.info(
                "order %s: %s.%s on %s: %s (request %s)",
                seen.order_id,
                batch.service,
                seen.step,
                seen.handled,
                outcome,
                seen.request_id,
                extra={
                    **fields,
                    "request_id": seen.request_id,
                    "service": batch.service,
                    "step": seen.step,
                    "outcome": outcome,
                },
            )


@cache
def _service_log(service: str) -> logging.Logger:
    """Told of every batch: looked up once, not under the logging module's lock each time."""
    return logging.getLogger(f"sagashop.{service}")


def _outcome(seen: StepSeen) -> str:
    if seen.failed:
        return "failed"
    if not seen.fresh:
        return "already taken"
    return "nothing" if seen.outcome is None else seen.outcome.name
