"""Tracing across processes: one purchase is one trace, on either transport.

Two system processes: the front door with the order and user services, and the rest. The
client sends its own `traceparent`, so the purchase's trace is the client's. Every span of that
trace must hang from the client's span by parent links naming spans of the trace, each step's
parent the span that brought it its event (over the bus: a receive in one process, whose parent
is the publish in the other); the spans come from both processes; a declined payment shows its
compensations as steps of their own.

Twice: with the SDK's in-memory exporter in each process (`traced_child`), and as an operator
runs it, `python -m sagashop` exporting by OTLP as the `OTEL_*` variables say, to a collector
this test stands up.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from sagashop.bootstrap import running_node
from sagashop.chaos.processes import Child
from sagashop.config import Settings
from tests.support import Shop, eventually, with_cluster_on

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
LAYOUT = (("door", "order,user"), ("rest", "inventory,item,payment,notification"))
SERVICES = {"order", "user", "inventory", "item", "payment", "notification"}
COMPENSATED = {
    ("payment", "failure"),
    ("item", "compensation"),
    ("inventory", "compensation"),
    ("user", "compensation"),
    ("order", "compensation"),
}


@dataclass(frozen=True)
class Seen:
    """One span as a collector sees it, whoever exported it."""

    name: str
    kind: str
    """server, producer, consumer (as OTLP and the SDK's JSON both name them, lower case)."""
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    process: str
    """The exporting process (its `service.instance.id`, or its name in the test)."""

    @property
    def step(self) -> bool:
        return "sagashop.step" in self.attributes


@with_cluster_on("sqlite-pubsub", "sqlite-streams")
async def test_spans_kept_in_memory_make_one_trace_per_purchase(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    children = [
        Child(
            name,
            services,
            cluster_settings,
            tmp_path / f"{name}.log",
            module="tests.cluster.traced_child",
            environment={"SPANS_TO": str(tmp_path / f"{name}.spans.json")},
        )
        for name, services in LAYOUT
    ]
    async with _running(children) as door:
        completed, declined = await _two_purchases(door)
        user, item = await door.new_user(), await door.new_item()
        unsampled = await _buy(door, user, item, "2" * 32, sampled=False)
    spans = [
        _from_sdk_json(span, child.name)
        for child in children
        for span in json.loads((tmp_path / f"{child.name}.spans.json").read_text())
    ]
    _check_purchase(_of(spans, completed))
    _check_compensations(_of(spans, declined))
    assert _of(spans, unsampled) == [], "a trace not sampled at its start makes no span"


@with_cluster_on("sqlite-pubsub")
async def test_spans_go_by_otlp_as_the_otel_variables_say(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    async with _collector() as (endpoint, received):
        variables = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": "shop-under-test",
        }
        children = [
            Child(name, services, cluster_settings, tmp_path / f"{name}.log", environment=variables)
            for name, services in LAYOUT
        ]
        async with _running(children) as door:
            completed, declined = await _two_purchases(door)

            async def steps_of_both() -> list[Seen]:
                return _of(received, completed) + _of(received, declined)

            await eventually(steps_of_both, lambda found: sum(s.step for s in found) >= 20)
    _check_purchase(_of(received, completed))
    _check_compensations(_of(received, declined))
    assert {s.attributes["service.name"] for s in received} == {"shop-under-test"}


async def _two_purchases(door: Shop) -> tuple[str, str]:
    """A purchase that completes and one whose payment is declined; their trace ids."""
    user, item = await door.new_user(), await door.new_item()
    completed = await _buy(door, user, item, CLIENT_TRACE)
    await door.set_payment_failure_rate(1.0)
    declined = await _buy(door, user, item, "1" * 32)
    await door.set_payment_failure_rate(0.0)
    return completed, declined


async def _buy(door: Shop, user: str, item: str, trace: str, sampled: bool = True) -> str:
    status, order = await door.call(
        "POST",
        "/orders",
        json={"userId": user, "itemId": item, "quantity": 1},
        headers={"traceparent": f"00-{trace}-{CLIENT_SPAN}-{int(sampled):02x}"},
    )
    assert status == 201, order
    await door.settle(order["id"])
    return trace


def _check_purchase(spans: list[Seen]) -> None:
    by_id = _linked(spans)
    steps = [s for s in spans if s.step]
    assert {s.attributes["sagashop.service"] for s in steps} == SERVICES
    assert {s.attributes["sagashop.kind"] for s in steps if "sagashop.kind" in s.attributes} == {
        "forward"
    }
    assert len({s.process for s in spans}) == 2, "spans from both processes"
    (served,) = [s for s in spans if s.kind == "server"]
    assert (served.name, served.parent_id) == ("POST /orders", CLIENT_SPAN)
    assert served.attributes["http.response.status_code"] == 201
    assert by_id[_parent(_step(steps, "order", "order.created"))] == served
    crossed = _step(steps, "inventory", "inventory.reserved")
    received = by_id[_parent(crossed)]
    published = by_id[_parent(received)]
    assert (received.name, received.kind) == ("receive balance.reserved", "consumer")
    assert (published.name, published.kind) == ("publish balance.reserved", "producer")
    assert received.process != published.process
    assert by_id[_parent(published)] == _step(steps, "user", "balance.reserved")


def _check_compensations(spans: list[Seen]) -> None:
    _linked(spans)
    steps = [s for s in spans if s.step]
    kinds = {(s.attributes["sagashop.service"], s.attributes.get("sagashop.kind")) for s in steps}
    assert kinds >= COMPENSATED


def _linked(spans: list[Seen]) -> dict[str, Seen]:
    """Every span's parent is the client's span or another span of the trace."""
    by_id = {s.span_id: s for s in spans}
    for span in spans:
        assert span.parent_id in {CLIENT_SPAN, *by_id}, f"{span.name}: its parent is not here"
    return by_id


def _of(spans: list[Seen], trace: str) -> list[Seen]:
    return [s for s in spans if s.trace_id == trace]


def _step(steps: list[Seen], service: str, outcome: str) -> Seen:
    (found,) = [
        s
        for s in steps
        if s.attributes["sagashop.service"] == service
        and s.attributes.get("sagashop.outcome") == outcome
    ]
    return found


def _parent(span: Seen) -> str:
    assert span.parent_id is not None, f"{span.name} has no parent"
    return span.parent_id


@asynccontextmanager
async def _running(children: list[Child]) -> AsyncIterator[Shop]:
    """The processes, started in turn and stopped (Ctrl-C) at the end, each exiting cleanly;
    a client for the first one's front door, with a node of no services to set the payment
    mock's rate through."""
    async with AsyncExitStack() as stack:
        for child in children:
            await child.start()
            stack.push_async_callback(_stopped, child)
        session = await stack.enter_async_context(aiohttp.ClientSession(children[0].url))
        settings = replace(children[0].settings, services=())
        yield Shop(session, await stack.enter_async_context(running_node(settings)))


async def _stopped(child: Child) -> None:
    code = await child.stop()
    assert code == 0, f"{child.name} exited with {code}:\n{child.log_text()[-3000:]}"


def _from_sdk_json(span: dict[str, Any], process: str) -> Seen:
    return Seen(
        span["name"],
        span["kind"].removeprefix("SpanKind.").lower(),
        span["context"]["trace_id"].removeprefix("0x"),
        span["context"]["span_id"].removeprefix("0x"),
        span["parent_id"] and span["parent_id"].removeprefix("0x"),
        span["attributes"],
        process,
    )


@asynccontextmanager
async def _collector() -> AsyncIterator[tuple[str, list[Seen]]]:
    """An OTLP/HTTP endpoint for traces; the spans it was sent."""
    received: list[Seen] = []
    app = web.Application()
    app.router.add_post("/v1/traces", _taking_into(received))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        await runner.cleanup()


def _taking_into(received: list[Seen]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def export(request: web.Request) -> web.Response:
        sent = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in sent.resource_spans:
            resource = _values(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                received.extend(_from_otlp(span, resource) for span in scope_spans.spans)
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    return export


KINDS = {2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _from_otlp(span: Any, resource: dict[str, Any]) -> Seen:
    return Seen(
        span.name,
        KINDS.get(span.kind, "internal"),
        span.trace_id.hex(),
        span.span_id.hex(),
        span.parent_span_id.hex() or None,
        {**resource, **_values(span.attributes)},
        str(resource["service.instance.id"]),
    )


def _values(attributes: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in attributes}


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value") or "string_value")
