"""Configuration in one place: command-line flags win over environment variables, which win
over the defaults below. `run.py` and the tests both build a `Settings` and nothing else."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SERVICE_NAMES = ("order", "user", "inventory", "item", "payment", "notification")
TRANSPORTS = ("pubsub", "streams")
SQLITE_PRAGMAS = "journal_mode=WAL&synchronous=NORMAL&busy_timeout=10000"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 3000
    services: tuple[str, ...] = SERVICE_NAMES
    redis_url: str | None = None
    database_url: str | None = None
    service_database_urls: Mapping[str, str] = field(default_factory=dict)
    data_dir: Path = Path("data")
    namespace: str = "sagashop"
    payment_failure_rate: float = 0.1
    payment_seed: int | None = None
    log_level: str = "INFO"
    bus: str = "pubsub"
    saga_deadline: float = 30.0
    nudge_after: float = 5.0
    sweep_every: float = 1.0
    fault_drop: float = 0.0
    fault_duplicate: float = 0.0

    def database_url_for(self, service: str) -> str:
        """The service's own URL, else the shared one, else a SQLite file of its own."""
        return (
            self.service_database_urls.get(service)
            or self.database_url
            or f"sqlite://{self.data_dir / service}.sqlite3?{SQLITE_PRAGMAS}"
        )


# setting name -> (flag, environment variable, help)
_SOURCES: dict[str, tuple[str, str, str]] = {
    "host": ("--host", "HOST", "address the HTTP front door listens on"),
    "port": ("--port", "PORT", "HTTP port (0: no HTTP front door)"),
    "services": ("--services", "SERVICES", "services this process runs: all, none, or a,b,…"),
    "redis_url": ("--redis-url", "REDIS_URL", "Redis to use; unset: start an embedded one"),
    "database_url": ("--database-url", "DATABASE_URL", "one database for every service"),
    "data_dir": ("--data-dir", "DATA_DIR", "where SQLite files and the embedded Redis live"),
    "namespace": ("--namespace", "BUS_NAMESPACE", "prefix of every Redis key and channel"),
    "payment_failure_rate": (
        "--payment-failure-rate",
        "PAYMENT_FAILURE_RATE",
        "share of payments the mock declines, 0..1",
    ),
    "payment_seed": ("--payment-seed", "PAYMENT_SEED", "makes the mock's declines repeatable"),
    "log_level": ("--log-level", "LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR"),
    "bus": ("--bus", "BUS", "how events travel: pubsub, or streams (kept until handled)"),
    "saga_deadline": ("--saga-deadline", "SAGA_DEADLINE", "seconds a purchase may take"),
    "nudge_after": (
        "--nudge-after",
        "NUDGE_AFTER",
        "seconds without an outcome before a saga is driven again (then twice as long, …)",
    ),
    "sweep_every": ("--sweep-every", "SWEEP_EVERY", "seconds between deadline sweeps"),
    "fault_drop": ("--fault-drop", "FAULT_DROP", "chaos: share of published events to lose"),
    "fault_duplicate": (
        "--fault-duplicate",
        "FAULT_DUPLICATE",
        "chaos: share of published events to send twice",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for name, (flag, env, help_text) in _SOURCES.items():
        parser.add_argument(flag, dest=name, default=None, help=f"{help_text} [{env}]")


def load(
    args: argparse.Namespace,
    environ: Mapping[str, str] = os.environ,
    defaults: Mapping[str, str] | None = None,
) -> Settings:
    """Merge flags, environment and defaults (a command's own, then the general ones); raise
    ValueError naming the bad setting."""
    raw: dict[str, str] = {}
    for name, (_flag, env, _help) in _SOURCES.items():
        value = getattr(args, name, None)
        if value is None:
            value = environ.get(env, (defaults or {}).get(name))
        if value is not None:
            raw[name] = value
    settings = Settings(**{name: _convert(name, value) for name, value in raw.items()})
    return _with_service_urls(settings, environ)


def to_flags(settings: Settings) -> list[str]:
    """The command line that gives another process these settings (per-service database URLs
    travel in the environment: see `service_environment`)."""
    flags: list[str] = []
    for name, (flag, _env, _help) in _SOURCES.items():
        value = getattr(settings, name)
        if name == "services":
            value = ",".join(value) or "none"
        if value is not None:
            flags += [flag, str(value)]
    return flags


def service_environment(settings: Settings) -> dict[str, str]:
    return {
        f"DATABASE_URL_{name.upper()}": url for name, url in settings.service_database_urls.items()
    }


def _convert(name: str, value: str) -> Any:
    converters: dict[str, Callable[[str], Any]] = {
        "port": _port,
        "services": parse_services,
        "data_dir": Path,
        "payment_failure_rate": _rate,
        "payment_seed": int,
        "log_level": str.upper,
        "bus": _bus,
        "saga_deadline": _seconds,
        "nudge_after": _seconds,
        "sweep_every": _seconds,
        "fault_drop": _rate,
        "fault_duplicate": _rate,
    }
    try:
        return converters.get(name, str)(value)
    except ValueError as error:
        raise ValueError(f"{_SOURCES[name][0]}: {error}") from None


def parse_services(value: str) -> tuple[str, ...]:
    words = [word.strip() for word in value.split(",") if word.strip()]
    if words == ["all"]:
        return SERVICE_NAMES
    if words == ["none"]:
        return ()
    unknown = sorted(set(words) - set(SERVICE_NAMES))
    if unknown:
        raise ValueError(
            f"unknown service(s) {', '.join(unknown)}; know {', '.join(SERVICE_NAMES)}"
        )
    return tuple(name for name in SERVICE_NAMES if name in words)


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(f"{port} is not a TCP port")
    return port


def _rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{rate} is not between 0 and 1")
    return rate


def _seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise ValueError(f"{value} is not a positive number of seconds")
    return seconds


def _bus(value: str) -> str:
    if value not in TRANSPORTS:
        raise ValueError(f"{value!r} is not one of {', '.join(TRANSPORTS)}")
    return value


def _with_service_urls(settings: Settings, environ: Mapping[str, str]) -> Settings:
    urls = {
        service: environ[f"DATABASE_URL_{service.upper()}"]
        for service in SERVICE_NAMES
        if environ.get(f"DATABASE_URL_{service.upper()}")
    }
    return replace(settings, service_database_urls=urls) if urls else settings
