"""What a node counts for Prometheus (served at `/metrics`, see `sagashop.http.metrics`).

Every node has a registry of its own, never prometheus_client's global one: the tests run
several systems in one process, and each must count only its own work. The hot paths (events
received and published, steps taken) pay a dict lookup and an increment per event, or one
observation per batch; the gauges are read only when scraped.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import version

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from sagashop.events import Event, EventName, refused_by
from sagashop.saga.declare import Service, Step
from sagashop.store.order import Owed
from sagashop.transport.signing import Rejected

NAMESPACE = "sagashop"
STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SAGA_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
DEADLINE = "deadline"
"""The `failed_at` of a saga cancelled because it had no outcome within its deadline."""
OTHER = "other"
"""The `failed_at` of a cancellation whose reason names no service: labels stay few."""


class Metrics:
    """One node's instruments, in a registry of its own."""

    def __init__(
        self,
        bus: str,
        services: Iterable[str],
        saga_deadline: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.sagas = Sagas(self, services, horizon=2 * saga_deadline, clock=clock)
        on_bus = ("transport", "event")
        published = self.counter("events_published", "Events the relay put on the bus.", *on_bus)
        received = self.counter("events_received", "Events the bus handed to this node.", *on_bus)
        self.published = EventCounts(published, bus)
        self.received = EventCounts(received, bus)
        self.handed_over = EventCounts(published, "local")
        self.taken_over = EventCounts(received, "local")
        """Events the relay gave this process's own services, off the bus (see `Relay`): sent
        and received at once."""
        self._step_seconds = self.histogram(
            "step_seconds",
            "Time to take a batch of steps in one transaction (a lone step is a batch of one), "
            "observed once per batch for each step in it.",
            STEP_BUCKETS,
            "service",
            "step",
        )
        self._steps = self.counter("steps", "Steps taken.", "service", "step")
        self._dead_letters = self.counter(
            "dead_letters", "Events whose step kept failing, kept as dead letters.", "service"
        )
        self._replays = self.counter(
            "dead_letter_replays", "Dead letters delivered again on request.", "service"
        )
        self._mailbox = self.gauge("mailbox_events", "Events waiting in a mailbox.", "service")
        self._observer_failures = self.counter(
            "observer_failures",
            "Times an observer of committed steps (the relay, waiting reads, the monitor's "
            "feed, the step log lines) raised; the others were still told.",
            "observer",
        )
        self._bus_rejected = self.counter(
            "bus_rejected",
            "Messages dropped from the bus: unsigned, bad signature, unknown key, stale, "
            "oversized or invalid.",
            "reason",
        )
        for reason in _rejections():  # each series there from the start, for alerts to read
            self._bus_rejected.labels(reason)
        self.http = HttpMetrics(self)
        build = self.gauge("build_info", "Always 1: the version this process runs.", "version")
        build.labels(version("sagashop")).set(1)

    def service(self, service: Service) -> StepMetrics:
        """What one service's actor records."""
        steps = [s.name for s in service.steps]
        return StepMetrics(
            {name: self._step_seconds.labels(service.name, name) for name in steps},
            {name: self._steps.labels(service.name, name) for name in steps},
            self._dead_letters.labels(service.name),
        )

    def watch_mailbox(self, service: str, depth: Callable[[], float]) -> None:
        """A service's mailbox, read when scraped."""
        self._mailbox.labels(service).set_function(depth)

    def bus_rejected(self, reason: str) -> None:
        self._bus_rejected.labels(reason).inc()

    def observer_failed(self, observer: str) -> None:
        self._observer_failures.labels(observer).inc()

    def replayed(self, service: str) -> None:
        self._replays.labels(service).inc()

    def watch(
        self,
        outbox_backlog: Callable[[], float],
        sagas_in_flight: Callable[[], float],
        loop_lag: Callable[[], float],
        longest_loop_lag: Callable[[], float],
    ) -> None:
        """Gauges read when scraped, so they cost nothing in between."""
        watched = {
            "outbox_backlog": (
                "Events the step logs hold unpublished (read every 2 s): what the bus has not "
                "taken yet.",
                outbox_backlog,
            ),
            "sagas_in_flight": (
                "Sagas this process's order service started and has not seen end (forgotten "
                "after twice the deadline).",
                sagas_in_flight,
            ),
            "loop_lag_seconds": ("How late the event loop last woke a sleeper.", loop_lag),
            "loop_lag_max_seconds": (
                "The longest the event loop kept a sleeper waiting since the node started.",
                longest_loop_lag,
            ),
        }
        for name, (doc, read) in watched.items():
            self.gauge(name, doc).set_function(read)

    def counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

    def gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(name, doc, labels, namespace=NAMESPACE, registry=self.registry)

    def histogram(self, name: str, doc: str, buckets: Sequence[float], *labels: str) -> Histogram:
        return Histogram(
            name, doc, labels, namespace=NAMESPACE, registry=self.registry, buckets=buckets
        )


class EventCounts:
    """Events by name, on one transport: a dict lookup and an increment per event."""

    def __init__(self, counter: Counter, transport: str) -> None:
        self._by_name = {name: counter.labels(transport, name) for name in EventName}

    def count(self, events: Iterable[Event]) -> None:
        for event in events:
            self._by_name[event.name].inc()


class StepMetrics:
    """What one service's actor records: per batch, not per event."""

    def __init__(
        self,
        seconds: dict[str, Histogram],
        taken: dict[str, Counter],
        dead_letters: Counter,
    ) -> None:
        self._seconds = seconds
        self._taken = taken
        self._dead_letters = dead_letters

    def took(self, steps: Iterable[Step], seconds: float) -> None:
        """A batch of steps committed in `seconds`."""
        for name, n in Tally(chosen.name for chosen in steps).items():
            self._seconds[name].observe(seconds)
            self._taken[name].inc(n)

    def gave_up(self) -> None:
        self._dead_letters.inc()


def _rejections() -> set[str]:
    return {Rejected.reason, *(kind.reason for kind in Rejected.__subclasses__())}


class HttpMetrics:
    """The front door's requests: how many, by route (as declared), method and status; how long,
    by route and method; how many are being answered now."""

    def __init__(self, metrics: Metrics) -> None:
        self.answered = metrics.counter(
            "http_requests", "HTTP requests answered.", "route", "method", "status"
        )
        self.seconds = metrics.histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (a stream: until it ended).",
            HTTP_BUCKETS,
            "route",
            "method",
        )
        self.in_flight = metrics.gauge("http_requests_in_flight", "HTTP requests being answered.")
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        """Each (route, method, status)'s two series, looked up once: labels() costs more than
        the increment, on every request."""

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        series = self._series.get((route, method, status))
        if series is None:
            counted = self.answered.labels(route, method, str(status))
            series = self._series[(route, method, status)] = (
                counted,
                self.seconds.labels(route, method),
            )
        series[0].inc()
        series[1].observe(seconds)


class Sagas:
    """The sagas this node's order service started and ended, and how long each took.

    Each is counted once, after the transaction that moved the order committed (see
    `StepLog.after_commit`). A saga is timed from its start to its end only where one process
    saw both: one that ended in another process running the order service, or across a
    restart, is counted but not timed."""

    def __init__(
        self, metrics: Metrics, services: Iterable[str], horizon: float, clock: Callable[[], float]
    ) -> None:
        self._horizon = horizon
        self._clock = clock
        self._started = metrics.counter("sagas_started", "Sagas started (orders placed).")
        self._completed = metrics.counter(
            "sagas_completed", "Sagas that ended with the order COMPLETED."
        )
        cancelled = metrics.counter(
            "sagas_cancelled",
            "Sagas that ended with the order CANCELLED, by the service whose step failed "
            f"({DEADLINE}: no outcome within the deadline).",
            "failed_at",
        )
        self._cancelled = {name: cancelled.labels(name) for name in [*services, DEADLINE, OTHER]}
        duration = metrics.histogram(
            "saga_duration_seconds",
            "From the order placed to its end (COMPLETED or CANCELLED).",
            SAGA_BUCKETS,
            "outcome",
        )
        self._duration = {
            outcome: duration.labels(outcome) for outcome in ("completed", "cancelled")
        }
        self._nudged = metrics.counter(
            "nudges",
            "Stalled sagas nudged: the order service published their last event again.",
            "owes",
        )
        for owed in Owed:
            self._nudged.labels(owed)
        self._starts: OrderedDict[str, float] = OrderedDict()
        """When each saga in flight started, oldest first; forgotten past `horizon`."""

    @property
    def in_flight(self) -> int:
        return len(self._starts)

    def started(self, order_id: str) -> None:
        self._started.inc()
        now = self._clock()
        self._forget_older_than(now - self._horizon)
        self._starts[order_id] = now

    def completed(self, order_id: str) -> None:
        self._completed.inc()
        self._ended(order_id, "completed")

    def cancelled(self, order_id: str, reason: str | None) -> None:
        """Cancelled because a step failed: its reason names the service first."""
        service = refused_by(reason) or OTHER
        self._cancelled.get(service, self._cancelled[OTHER]).inc()
        self._ended(order_id, "cancelled")

    def expired(self, order_id: str) -> None:
        self._cancelled[DEADLINE].inc()
        self._ended(order_id, "cancelled")

    def nudged(self, owes: str | None) -> None:
        self._nudged.labels(str(owes)).inc()

    def _ended(self, order_id: str, outcome: str) -> None:
        started = self._starts.pop(order_id, None)
        if started is not None:
            self._duration[outcome].observe(self._clock() - started)

    def _forget_older_than(self, moment: float) -> None:
        """Sagas end within their deadline: one still here long after ended elsewhere."""
        while self._starts and next(iter(self._starts.values())) < moment:
            self._starts.popitem(last=False)
