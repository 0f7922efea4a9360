"""The chaos run, as a test: 2,000 purchases over four processes while processes are killed
with SIGKILL and restarted, Redis restarts, the bus loses 2% of events and doubles 5%, and
payment declines 20%. Every order must end within its deadline and the audit find nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagashop.chaos import run as chaos
from sagashop.config import Settings
from sagashop.transport import TRANSPORTS

PLAN = chaos.Plan(purchases=2_000, kills=4)


@pytest.mark.chaos
@pytest.mark.parametrize("bus", TRANSPORTS)
async def test_no_purchase_is_lost_and_nothing_is_created_or_destroyed_under_chaos(
    bus: str, tmp_path: Path
) -> None:
    settings = Settings(
        bus=bus,
        fault_drop=0.02,
        fault_duplicate=0.05,
        payment_failure_rate=0.2,
        saga_deadline=20.0,
        nudge_after=2.0,
        sweep_every=0.5,
    )

    outcome = await chaos.run(PLAN, settings, tmp_path)

    print("\n" + "\n".join(outcome.lines()))
    assert not outcome.timed_out, f"longer than {PLAN.time_limit}s"
    assert outcome.purchases == PLAN.purchases
    assert sum(outcome.statuses.values()) == PLAN.purchases, "one order per purchase"
    assert set(outcome.statuses) <= {"COMPLETED", "CANCELLED"}
    assert (outcome.kills, outcome.redis_restarts) == (PLAN.kills, 1)
    assert outcome.dropped > 0
    assert outcome.duplicated > 0
    assert outcome.past_deadline == 0
    assert outcome.audit["ok"], outcome.audit["violations"]
    assert outcome.audit["counts"]["settled"] == PLAN.purchases
    assert outcome.clean_exits
