"""When a step is taken again: the store's errors, as `sagashop.store.errors` names them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from sagashop.errors import CallerError
from sagashop.store.errors import StoreConflict, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_ERRORS = (StoreUnavailable, ConnectionError, OSError, TimeoutError)
CALLER_WAITS = 5.0
"""Seconds a command someone waits for (a request) is retried while the database is away, at
most: past that the caller is told 503 and may try again, rather than wait out a step's budget."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long a step is retried before it counts as failed.

    A database or network that is away (transient errors) gets a time budget; a conflict with a
    concurrent step is simply tried again; an answer such as "not found" is given at once; anything
    else looks like a bug or a poison message and gets a few attempts.
    """

    attempts: int = 3
    conflicts: int = 10
    transient_budget: float = 30.0
    first_delay: float = 0.02
    max_delay: float = 2.0

    def call(self, work: Callable[[], T], what: str) -> T:
        started = time.monotonic()
        failures = conflicts = 0
        while True:
            try:
                return work()
            except StoreConflict:
                conflicts += 1
                if conflicts >= self.conflicts:
                    raise
                delay = self.first_delay
            except CallerError:
                raise  # an answer for the caller (404, 409, …), not a failure to try again
            except TRANSIENT_ERRORS as error:
                failures += 1
                if time.monotonic() - started > self.transient_budget:
                    raise
                delay = self._delay(failures)
                log.warning("%s: %s; retrying in %.2fs", what, error, delay)
            except Exception as error:
                failures += 1
                if failures >= self.attempts:
                    raise
                delay = self._delay(failures)
                log.warning("%s: %r; retrying in %.2fs", what, error, delay)
            # Waits on the actor's own thread, on purpose: its mailbox is taken in order, and no
            # later batch may overtake one still being tried (an undoing before what it undoes);
            # only this service waits, while the loop and the other actors go on.
            time.sleep(delay)

    def for_callers(self) -> RetryPolicy:
        """This policy, with no more transient budget than a waiting caller bears."""
        return replace(self, transient_budget=min(self.transient_budget, CALLER_WAITS))

    def _delay(self, failures: int) -> float:
        return min(self.max_delay, self.first_delay * 2.0 ** (failures - 1))
