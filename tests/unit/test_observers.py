"""The observers of committed steps: each told in turn, none able to silence another."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sagashop.events import Event, EventName
from sagashop.saga.observers import Committed, Observers, StepSeen

CREATED = Event(EventName.ORDER_CREATED, "o", "u", "i", 1, 10)
RESERVED = CREATED.follow(EventName.BALANCE_RESERVED)


@dataclass
class FakeOutbox:
    service: str = "user"


@dataclass
class Heard:
    batches: list[Committed] = field(default_factory=list)

    def committed(self, batch: Committed) -> None:
        self.batches.append(batch)


class Broken:
    def committed(self, batch: Committed) -> None:
        raise RuntimeError("the monitor's Redis is away")


def a_batch() -> Committed:
    seen = StepSeen("o", "reserve", CREATED.name, CREATED.event_id, RESERVED, 7, fresh=True)
    return Committed(FakeOutbox(), (seen,))  # type: ignore[arg-type]


def test_an_observer_that_raises_is_counted_and_the_others_are_still_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before, after, failed = Heard(), Heard(), []
    observers = Observers([before, Broken(), after], failed.append)
    batch = a_batch()
    observers.committed(batch)
    assert before.batches == [batch]
    assert after.batches == [batch]
    assert failed == ["Broken"]
    assert "Broken failed to take a committed batch" in caplog.text
