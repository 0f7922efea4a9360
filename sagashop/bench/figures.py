"""A bench run summed up: its figures, the invariants it must keep, and how both are shown.

The invariants are about correctness only (the audit, nothing lost or refused, the flash sale
selling exactly its stock); no figure of speed decides the exit status.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from sagashop.bench.cpu import CpuSpent
from sagashop.bench.load import LOST, REFUSED, Outcome
from sagashop.bench.scenarios import SOLD_OUT, Plan

PERCENTILES = (50, 95, 99)


def percentile(ordered: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted values: a value that was measured, never an
    interpolation between two; None when there is none."""
    if not ordered:
        return None
    rank = max(1, math.ceil(share / 100 * len(ordered)))
    return ordered[rank - 1]


def reason_summary(reason: str) -> str:
    """A failure reason without its figures: `item: out of stock: 0 left, 1 requested` counts
    as `item: out of stock`."""
    return ": ".join(reason.split(": ")[:2])


@dataclass(frozen=True)
class Vitals:
    """What the system's processes used: their peak RSS summed, and the longest event-loop lag
    any of them saw. None where a process does not tell (an older server)."""

    peak_rss_bytes: int | None = None
    max_lag_ms: float | None = None


def vitals_of(healths: Sequence[Mapping[str, Any]], peaks: Sequence[int | None]) -> Vitals:
    """The peak RSS the operating system reports for every process of a system the bench
    started (`peaks`), or else what each front door's `/health` says; the longest lag any
    `/health` reports."""
    rss = list(peaks) or [health.get("memory", {}).get("peakRssBytes") for health in healths]
    lags = [health["loop"]["maxLagMs"] for health in healths if "loop" in health]
    return Vitals(
        sum(value for value in rss if value is not None) if None not in rss else None,
        max(lags) if lags else None,
    )


@dataclass(frozen=True)
class Figures:
    plan: Plan
    processes: int | None
    """How many processes the bench started; None for a system already running (`--url`)."""
    outcomes: Sequence[Outcome]
    seconds: float
    """From the first POST until the last order's final status was read."""
    audit: Mapping[str, Any]
    audit_seconds: float
    vitals: Vitals
    cpu: CpuSpent
    """From the first purchase until every saga settled (not the audit)."""

    @property
    def statuses(self) -> Counter[str]:
        return Counter(outcome.status for outcome in self.outcomes)

    @property
    def reasons(self) -> Counter[str]:
        return Counter(reason_summary(o.reason) for o in self.outcomes if o.reason is not None)

    @property
    def errors(self) -> list[str]:
        return [error for outcome in self.outcomes for error in outcome.errors]

    @property
    def refused_with(self) -> Counter[int]:
        """How many answers refused a request, by status (429, 503, …)."""
        return Counter(status for outcome in self.outcomes for status in outcome.refused_with)

    @property
    def latency_ms(self) -> dict[str, float | None]:
        ordered = sorted(o.seconds * 1000 for o in self.outcomes if o.seconds is not None)
        return {f"p{share}": percentile(ordered, share) for share in PERCENTILES}

    def cpu_ms_per_purchase(self) -> dict[str, float | None]:
        """Server CPU per purchase placed (all server processes and Redis), Redis's part, and
        the broker's (`--broker-pid`), which is not part of the server's."""
        placed = len(self.outcomes)

        def per(seconds: float | None) -> float | None:
            return None if seconds is None or not placed else seconds * 1000 / placed

        return {
            "server": per(self.cpu.total),
            "redis": per(self.cpu.redis),
            "broker": per(self.cpu.broker),
        }

    def per_second(self, *statuses: str) -> float:
        counts = self.statuses
        return sum(counts[status] for status in statuses) / self.seconds if self.seconds else 0.0

    def failures(self) -> list[str]:
        """Each invariant the run broke, in words; empty when it kept them all."""
        statuses, errors = self.statuses, self.errors
        failed = []
        if not self.audit.get("ok"):
            found = self.audit.get("violations", [])
            failed.append(f"audit: {len(found)} violation(s): {'; '.join(found[:5])}")
        if unsettled := self.audit.get("counts", {}).get("in flight"):
            failed.append(f"audit: {unsettled} order(s) still in flight, their sagas unsettled")
        if statuses[LOST]:
            failed.append(f"{statuses[LOST]} order(s) lost: no final status within the deadline")
        if errors:
            failed.append(
                f"{len(errors)} HTTP error(s) ({_by_status(self.refused_with)}), "
                f"{statuses[REFUSED]} order(s) refused: {errors[0]}"
            )
        if self.plan.scenario == "flash-sale":
            failed += self._sold_out_failures()
        return failed

    def _sold_out_failures(self) -> list[str]:
        """Exactly the stock sold; every other order cancelled for lack of stock."""
        sold, stock = self.statuses["COMPLETED"], self.plan.stock
        failed = []
        if sold != stock:
            failed.append(f"flash sale: {sold} completed, not exactly the stock of {stock}")
        others = Counter(
            o.reason or o.status
            for o in self.outcomes
            if o.status != "COMPLETED" and not (o.status == "CANCELLED" and o.reason == SOLD_OUT)
        )
        if others:
            failed.append(
                f"flash sale: {others.total()} order(s) not cancelled with {SOLD_OUT!r}: "
                f"{dict(others.most_common(5))}"
            )
        return failed

    def to_dict(self) -> dict[str, Any]:
        """Everything, for machines (`--json`)."""
        plan = self.plan
        failures = self.failures()
        return {
            "scenario": plan.scenario,
            "purchases": plan.purchases,
            "concurrency": plan.concurrency,
            "users": plan.users,
            "items": plan.items,
            "stock": plan.stock,
            "seed": plan.seed,
            "processes": self.processes,
            "seconds": round(self.seconds, 3),
            "completedPerSecond": round(self.per_second("COMPLETED"), 1),
            "finalPerSecond": round(self.per_second("COMPLETED", "CANCELLED"), 1),
            "latencyMs": {
                name: None if value is None else round(value, 1)
                for name, value in self.latency_ms.items()
            },
            "statuses": dict(self.statuses),
            "reasons": dict(self.reasons),
            "errors": {
                "count": len(self.errors),
                "byStatus": {str(status): n for status, n in sorted(self.refused_with.items())},
                "first": self.errors[:5],
            },
            "audit": {**self.audit, "seconds": round(self.audit_seconds, 3)},
            "cpuMsPerPurchase": {
                name: None if value is None else round(value, 3)
                for name, value in self.cpu_ms_per_purchase().items()
            },
            "peakRssBytes": self.vitals.peak_rss_bytes,
            "maxLoopLagMs": self.vitals.max_lag_ms,
            "ok": not failures,
            "failures": failures,
        }

    def table(self) -> Table:
        """The figures for people."""
        plan, vitals = self.plan, self.vitals
        table = Table(title=f"sagashop bench: {plan.scenario}", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(self.statuses.items()))
        counts = ", ".join(f"{n} {what}" for what, n in self.audit.get("counts", {}).items())
        rows = {
            "purchases": f"{plan.purchases} by {plan.users} users, {plan.items} item(s)",
            "concurrency": str(plan.concurrency),
            "processes": "a running system" if self.processes is None else str(self.processes),
            "took": f"{self.seconds:.1f} s",
            "completed purchases/s": f"{self.per_second('COMPLETED'):.1f}",
            "orders to a final status/s": f"{self.per_second('COMPLETED', 'CANCELLED'):.1f}",
            "latency p50/p95/p99": " / ".join(_ms(v) for v in self.latency_ms.values()),
            "statuses": statuses,
            "cancelled by": ", ".join(f"{n} {why}" for why, n in self.reasons.most_common()) or "-",
            "HTTP errors": f"{len(self.errors)} ({_by_status(self.refused_with)})",
            "audit": f"{'ok' if self.audit.get('ok') else 'FAILED'} "
            f"in {self.audit_seconds:.2f} s ({counts})",
            "server CPU per purchase": _cpu(self.cpu_ms_per_purchase()),
            "broker CPU per purchase": _ms_exact(self.cpu_ms_per_purchase()["broker"]),
            "peak RSS (all processes)": _mib(vitals.peak_rss_bytes),
            "max event-loop lag": "n/a" if vitals.max_lag_ms is None else f"{vitals.max_lag_ms} ms",
        }
        for name, value in rows.items():
            table.add_row(name, value)
        return table


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} ms"


def _ms_exact(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _cpu(per_purchase: Mapping[str, float | None]) -> str:
    server, redis = per_purchase["server"], per_purchase["redis"]
    if server is None:
        return "n/a"
    return f"{server:.2f} ms" + ("" if redis is None else f" (of which Redis {redis:.2f} ms)")


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.0f} MiB"


def _by_status(refused: Counter[int]) -> str:
    """`429: 2, 503: 1`, or `none refused` (the errors were failures to connect or time-outs)."""
    return ", ".join(f"{status}: {n}" for status, n in sorted(refused.items())) or "none refused"
