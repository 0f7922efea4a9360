"""The spans themselves (see `sagashop.tracing`), by the OpenTelemetry API; imported only when
tracing is on. Every parent is named explicitly from an event's or a request's `traceparent`,
never taken from the current context: a step's span starts on one thread and may end on another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import version

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sagashop.events import Event, kind_of

_HEADERS = TraceContextTextMapPropagator()


class OtelTracing:
    """`Tracing` by the OpenTelemetry SDK; `provider` decides where the spans go (OTLP, or a
    test's memory)."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("sagashop", version("sagashop"))

    def serving(self, method: str, route: str, headers: Mapping[str, str]) -> Served:
        """The span of one HTTP request, a child of the caller's `traceparent` if it sent one."""
        span = self._tracer.start_span(
            f"{method} {route}",
            context=_HEADERS.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
        )
        return Served(span)

    def steps(self, service: str, steps: Sequence[tuple[str, Event]]) -> list[StepSpan]:
        """A span for each (step, event handled) a batch is about to take, in order."""
        return [
            StepSpan.unsampled()
            if not _sampled(event.traceparent)
            else StepSpan(
                self._tracer.start_span(
                    f"{service}.{step}",
                    context=_parent(event.traceparent),
                    kind=SpanKind.CONSUMER,
                    attributes={
                        "sagashop.service": service,
                        "sagashop.step": step,
                        "sagashop.order_id": event.order_id,
                        "sagashop.handled": event.name,
                    },
                )
            )
            for step, event in steps
        ]

    @contextmanager
    def publishing(self, events: Sequence[Event], system: str) -> Iterator[list[Event]]:
        """The events as they go out, each stamped with its publish span (ended on the way
        out, once the bus has them)."""
        spans = [
            self._message_span("publish", e, system, SpanKind.PRODUCER)
            if _sampled(e.traceparent)
            else None
            for e in events
        ]
        try:
            yield [
                e if span is None else e.traced(traceparent(span))
                for e, span in zip(events, spans, strict=True)
            ]
        finally:
            for span in spans:
                if span is not None:
                    span.end()

    def received(self, service: str, events: Sequence[Event], system: str) -> list[Event]:
        """The events as `service` takes them off the bus, each stamped with its receive span."""
        stamped = []
        for event in events:
            if not _sampled(event.traceparent):
                stamped.append(event)
                continue
            span = self._message_span("receive", event, system, SpanKind.CONSUMER)
            span.set_attribute("sagashop.service", service)
            span.end()
            stamped.append(event.traced(traceparent(span)))
        return stamped

    def shutdown(self) -> None:
        """Send what is left (called once the node has stopped)."""
        self.provider.shutdown()

    def _message_span(self, operation: str, event: Event, system: str, kind: SpanKind) -> Span:
        return self._tracer.start_span(
            f"{operation} {event.name}",
            context=_parent(event.traceparent),
            kind=kind,
            attributes={
                "messaging.system": system,
                "messaging.operation.type": operation,
                "messaging.destination.name": event.name,
                "messaging.message.id": event.event_id,
                "sagashop.order_id": event.order_id,
            },
        )


class Served:
    """`sagashop.tracing.Served`: a span of the SDK."""

    def __init__(self, span: Span) -> None:
        self.span = span
        self.traceparent = traceparent(span)
        """What the order it places carries, so that the order's first step is its child."""

    def answered(self, status: int) -> None:
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(Status(StatusCode.ERROR))
        self.span.end()


class StepSpan:
    """`sagashop.tracing.StepSpan`: a span of the SDK, or none where the trace is not
    sampled."""

    def __init__(self, span: Span | None) -> None:
        self.span = span
        self.traceparent = None if span is None else traceparent(span)
        """What the step's outcome carries, so that its publish is this span's child (None:
        the outcome carries on the trace as it came)."""

    @classmethod
    def unsampled(cls) -> StepSpan:
        """No span: the purchase's trace was not sampled at its start (with a parent-based
        sampler, its spans would all be dropped anyway)."""
        return cls(None)

    def taken(self, outcome: Event | None, fresh: bool, gave_up: bool) -> None:
        """The batch committed: end the span with what the step came to."""
        if self.span is None:
            return
        self.span.set_attribute("sagashop.fresh", fresh)
        if outcome is not None:
            self.span.set_attribute("sagashop.outcome", outcome.name)
            self.span.set_attribute("sagashop.kind", kind_of(outcome.name))
        if gave_up:
            self.span.set_status(Status(StatusCode.ERROR, "given up: kept as a dead letter"))
        self.span.end()

    def rolled_back(self, error: BaseException) -> None:
        """The batch rolled back: its steps are taken again (one at a time, by the caller)."""
        if self.span is None:
            return
        self.span.set_status(Status(StatusCode.ERROR, f"rolled back: {type(error).__name__}"))
        self.span.end()


def traceparent(span: Span) -> str:
    """The span as a W3C `traceparent`."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _sampled(given: str | None) -> bool:
    """Whether a trace is to be recorded: a new one (the sampler decides), or one whose start
    was sampled (its flags' last bit)."""
    return given is None or int(given[-2:], 16) & 1 == 1


def _parent(given: str | None) -> Context | None:
    """The context of the span a `traceparent` names (None: a new trace begins)."""
    if given is None:
        return None
    _, trace_id, span_id, flags = given.split("-")
    remote = SpanContext(int(trace_id, 16), int(span_id, 16), True, TraceFlags(int(flags, 16)))
    return trace.set_span_in_context(NonRecordingSpan(remote))
