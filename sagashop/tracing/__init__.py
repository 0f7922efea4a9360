"""OpenTelemetry spans, when asked for: one per HTTP request, per saga step, per event published
and per event received, linked into one trace per purchase across processes and transports.

The link is the W3C `traceparent` of the last span that touched an event, carried in the event
itself (`Event.traceparent`), so it travels inside the signed envelope and is kept with a step's
outcome in the outbox: the HTTP request's span is the parent of the step that places the order,
each step's span the parent of the publish of what it emitted, that publish the parent of each
receive, and each receive the parent of the step it leads to. Compensations are steps like any
other, their spans marked `sagashop.kind = compensation`.

Off unless the OpenTelemetry SDK is installed (`pip install 'sagashop[otel]'`) and an exporter
is named by the standard variables (`OTEL_TRACES_EXPORTER`, or an `OTEL_EXPORTER_OTLP_*ENDPOINT`).
Off, the node holds `None` where a `Tracing` would be, and sagashop's spans are never loaded:
this module says what tracing is and reads the environment; `sagashop.tracing.spans` makes the
spans, by the OpenTelemetry SDK.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from importlib.metadata import version
from typing import Any, Protocol

from sagashop.errors import SagashopError
from sagashop.events import Event

log = logging.getLogger(__name__)

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
EXPORTERS = ("otlp", "console")


class Served(Protocol):
    """One HTTP request's span, until it is answered."""

    traceparent: str
    """What the order it places carries, so that the order's first step is its child."""

    def answered(self, status: int) -> None: ...


class StepSpan(Protocol):
    """One step's span, from before its batch until the batch committed (or rolled back)."""

    traceparent: str | None
    """What the step's outcome carries, so that its publish is this span's child (None: the
    outcome carries the trace on as it came)."""

    def taken(self, outcome: Event | None, fresh: bool, gave_up: bool) -> None:
        """The batch committed: end the span with what the step came to."""

    def rolled_back(self, error: BaseException) -> None:
        """The batch rolled back: its steps are taken again (one at a time, by the caller)."""


class Tracing(Protocol):
    """What the node, the step log and the front door ask of tracing (see the module)."""

    def serving(self, method: str, route: str, headers: Mapping[str, str]) -> Served:
        """The span of one HTTP request, a child of the caller's `traceparent` if it sent one."""

    def steps(self, service: str, steps: Sequence[tuple[str, Event]]) -> Sequence[StepSpan]:
        """A span for each (step, event handled) a batch is about to take, in order."""

    def publishing(
        self, events: Sequence[Event], system: str
    ) -> AbstractContextManager[Sequence[Event]]:
        """The events as they go out, each stamped with its publish span (ended on the way
        out, once the bus has them)."""

    def received(self, service: str, events: Sequence[Event], system: str) -> list[Event]:
        """The events as `service` takes them off the bus, each stamped with its receive span."""

    def shutdown(self) -> None:
        """Send what is left (once the process has stopped)."""


class TracingMisconfigured(SagashopError, ValueError):
    """The `OTEL_*` variables ask for what sagashop cannot export by: refuse to start."""


def from_environment(environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """Tracing as the standard `OTEL_*` variables ask for it, or None (see the module)."""
    exporter = _exporter_asked(environ)
    if exporter is None:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from sagashop.tracing.spans import OtelTracing
    except ImportError:
        log.warning(
            "tracing: %s exporter asked for, but OpenTelemetry is not installed "
            "(pip install 'sagashop[otel]'): no spans",
            exporter,
        )
        return None
    provider = TracerProvider(resource=_resource(Resource))
    provider.add_span_processor(BatchSpanProcessor(_exporter(exporter)))
    log.info("tracing: spans exported by %s", exporter)
    return OtelTracing(provider)


def _exporter_asked(environ: Mapping[str, str]) -> str | None:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not exporter and any(environ.get(name) for name in ENDPOINT_VARIABLES):
        exporter = "otlp"
    if exporter in ("", "none"):
        return None
    if exporter not in EXPORTERS:
        raise TracingMisconfigured(
            f"OTEL_TRACES_EXPORTER={exporter}: sagashop exports spans by otlp or console"
        )
    protocol = environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if exporter == "otlp" and protocol != "http/protobuf":
        raise TracingMisconfigured(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: sagashop sends http/protobuf (port 4318)"
        )
    return exporter


def _exporter(name: str) -> Any:
    """The exporter named; it reads its own `OTEL_EXPORTER_OTLP_*` variables."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _resource(resource: Any) -> Any:
    """`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` as given, the service named "sagashop"
    unless they name it; each process told apart by host and pid."""
    found = resource.create(
        {
            "service.version": version("sagashop"),
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
        }
    )
    if str(found.attributes.get("service.name", "")).startswith("unknown_service"):
        found = found.merge(resource({"service.name": "sagashop"}))
    return found
