"""Tracing's switch: the standard `OTEL_*` variables, and nothing imported while it is off."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sagashop.tracing import TracingMisconfigured, from_environment


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
        {"OTEL_SERVICE_NAME": "shop"},
    ],
)
def test_off_unless_an_exporter_is_asked_for(environ: dict[str, str]) -> None:
    assert from_environment(environ) is None


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"},
        {"OTEL_TRACES_EXPORTER": "otlp"},
        {"OTEL_TRACES_EXPORTER": "console"},
    ],
)
def test_on_when_an_exporter_or_endpoint_is_named(environ: dict[str, str]) -> None:
    tracing = from_environment(environ)
    assert tracing is not None
    tracing.shutdown()


@pytest.mark.parametrize(
    ("environ", "complaint"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "otlp or console"),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf"),
    ],
)
def test_what_it_cannot_export_by_is_refused(environ: dict[str, str], complaint: str) -> None:
    with pytest.raises(TracingMisconfigured, match=complaint):
        from_environment(environ)


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout + done.stderr


def test_off_it_loads_no_tracing_code() -> None:
    """The whole system wired, tracing off: neither sagashop's spans nor the SDK's tracer are
    loaded (redis-py loads OpenTelemetry's metrics API for its own use where it is installed)."""
    printed = _python(
        "import sys, sagashop.cli, sagashop.bootstrap, sagashop.http\n"
        "from sagashop.tracing import from_environment\n"
        "assert from_environment({}) is None\n"
        "loaded = ('sagashop.tracing.spans', 'opentelemetry.sdk.trace')\n"
        "print(sorted(m for m in sys.modules if m.startswith(loaded)))"
    )
    assert printed.strip() == "[]"


def test_asked_for_but_not_installed_it_says_so_and_runs_without() -> None:
    printed = _python(
        "import logging, sys\n"
        "logging.basicConfig()\n"
        "sys.modules['opentelemetry'] = None  # as where the extra is not installed\n"
        "from sagashop.tracing import from_environment\n"
        "print(from_environment({'OTEL_TRACES_EXPORTER': 'otlp'}))"
    )
    assert "pip install 'sagashop[otel]'" in printed
    assert printed.splitlines()[0] == "None"
