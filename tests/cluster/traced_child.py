"""A system process as `python -m sagashop` serves, but tracing into the OpenTelemetry SDK's
in-memory exporter; at its end it writes the spans it made, as JSON, to the file named by
`SPANS_TO`. Wired as `sagashop.cli.serve` wires a process, with this tracing instead of the one
the `OTEL_*` variables ask for."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import sagashop.config as config
from sagashop.cli import COMMANDS, redis_for
from sagashop.http import create_app
from sagashop.logs import configure_logging
from sagashop.tracing.spans import OtelTracing


def main() -> int:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, COMMANDS["serve"].settings)
    settings = config.load(parser.parse_args(), defaults=COMMANDS["serve"].defaults)
    configure_logging(settings)
    with redis_for(settings) as settings:
        app = create_app(settings, tracing=OtelTracing(provider))
        web.run_app(app, host=settings.host, port=settings.port, print=None)
    spans = [json.loads(span.to_json()) for span in exporter.get_finished_spans()]
    Path(os.environ["SPANS_TO"]).write_text(json.dumps(spans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
