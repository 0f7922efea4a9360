"""Configuration in one place: command-line flags win over environment variables, which win
over the defaults below. `run.py` and the tests both build a `Settings` and nothing else."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from limits import parse_many

from sagashop.actors import SERVICE_NAMES
from sagashop.tokens import SigningKey, parse_keys
from sagashop.transport import NO_AMQP_URL, TRANSPORTS
from sagashop.transport.signing import BusKeys

SQLITE_PRAGMAS = "journal_mode=WAL&synchronous=NORMAL&busy_timeout=10000"
LOG_FORMATS = ("console", "json")
RATE_LIMIT_STORES = ("memory", "redis")
DEFAULT_RATE_LIMIT = "50/second"
MAX_BODY_BYTES = 16 * 1024
"""The largest request body the front door reads (413 past it)."""


def terminal_log_format() -> str:
    """console for a person at a terminal; json for whatever collects the logs otherwise."""
    return "console" if sys.stderr.isatty() else "json"


DAY = 86_400.0
UNITS = {"s": 1.0, "m": 60.0, "h": 3_600.0, "d": DAY}
SHORTEST_RETENTION = 3_600.0
"""An hour: far past any saga's deadline and any redelivery the bus lets through."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 3000
    services: tuple[str, ...] = SERVICE_NAMES
    redis_url: str | None = None
    redis_insecure: bool = False
    """Use a Redis over TCP that answers clients without a password (see `credentials`)."""
    amqp_url: str | None = None
    """The RabbitMQ of `--bus rabbitmq`, which then needs it (`check_bus`)."""
    database_url: str | None = None
    service_database_urls: Mapping[str, str] = field(default_factory=dict)
    data_dir: Path = Path("data")
    namespace: str = "sagashop"
    payment_failure_rate: float = 0.1
    payment_seed: int | None = None
    log_level: str = "INFO"
    log_steps: bool = False
    log_sql: bool = False
    log_format: str = field(default_factory=terminal_log_format)
    bus: str = "pubsub"
    saga_deadline: float = 30.0
    nudge_after: float = 5.0
    sweep_every: float = 1.0
    reclaim_idle: float = 15.0
    fault_drop: float = 0.0
    fault_duplicate: float = 0.0
    rate_limit: str | None = None
    """None: `rate_limit_for` decides (off where auth is off on loopback, else 50/second)."""
    rate_limit_store: str = "memory"
    body_timeout: float = 10.0
    head_timeout: float = 20.0
    bus_keys: BusKeys | None = None
    test_controls: bool = False
    auth: bool | None = None
    """None: on unless the front door binds a loopback address (see `auth_enabled`)."""
    auth_keys: tuple[SigningKey, ...] = field(default=(), repr=False)
    token_ttl: float = 3600.0
    migrate: bool = True
    retain: float = 30 * DAY
    """Apply pending migrations at start; off: refuse to start on a database that is behind."""
    processes: int = 1
    """Processes the services are dealt over, all answering on the one port."""
    reuse_port: bool = False
    """Bind the port with SO_REUSEPORT: set by `--processes` for its children."""

    def database_url_for(self, service: str) -> str:
        """The service's own URL, else the shared one, else a SQLite file of its own."""
        return (
            self.service_database_urls.get(service)
            or self.database_url
            or f"sqlite://{self.data_dir / service}.sqlite3?{SQLITE_PRAGMAS}"
        )


class Source(NamedTuple):
    """Where a setting comes from on the command line and in the environment."""

    flag: str
    env: str
    help: str
    convert: Callable[[str], Any] = str


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


def _retention(value: str) -> float:
    """`30d`, `12h`, `90m`, or seconds: at least an hour."""
    text = value.strip().lower()
    unit = UNITS.get(text[-1:])
    seconds = float(text[:-1] if unit else text) * (unit or 1.0)
    if seconds < SHORTEST_RETENTION:
        raise ValueError(f"{value} is shorter than an hour")
    return seconds


def _seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise ValueError(f"{value} is not a positive number of seconds")
    return seconds


def _processes(value: str) -> int:
    """A count, or `auto`: one per core."""
    count = (os.cpu_count() or 1) if value.strip().lower() == "auto" else int(value)
    if count < 1:
        raise ValueError(f"{value} is not a number of processes (1 or more, or auto)")
    return count


def _switch(value: str) -> bool:
    words = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}
    if value.lower() not in words:
        raise ValueError(f"{value!r} is not on or off")
    return words[value.lower()]


def _rate_limit(value: str) -> str:
    """`off`, or what the `limits` library parses: "50/second", "50/second;1000/minute"."""
    if value.strip().lower() == "off":
        return "off"
    parse_many(value)  # raises ValueError naming what it cannot read
    return value.strip()


def _rate_limit_store(value: str) -> str:
    if value.lower() not in RATE_LIMIT_STORES:
        raise ValueError(f"{value!r} is not one of {', '.join(RATE_LIMIT_STORES)}")
    return value.lower()


def _log_format(value: str) -> str:
    if value.lower() not in LOG_FORMATS:
        raise ValueError(f"{value!r} is not one of {', '.join(LOG_FORMATS)}")
    return value.lower()


def _bus(value: str) -> str:
    if value not in TRANSPORTS:
        raise ValueError(f"{value!r} is not one of {', '.join(TRANSPORTS)}")
    return value


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


_SOURCES: dict[str, Source] = {
    "host": Source("--host", "HOST", "address the HTTP front door listens on"),
    "port": Source("--port", "PORT", "HTTP port (0: no HTTP front door)", _port),
    "services": Source(
        "--services", "SERVICES", "services this process runs: all, none, or a,b,…", parse_services
    ),
    "redis_url": Source("--redis-url", "REDIS_URL", "Redis to use; unset: start an embedded one"),
    "redis_insecure": Source(
        "--redis-insecure",
        "REDIS_INSECURE",
        "on: use a Redis over TCP that answers clients without a password (anyone who reaches it "
        "can read and publish), with a warning; off (default): refuse to start on one",
        _switch,
    ),
    "amqp_url": Source(
        "--amqp-url",
        "AMQP_URL",
        "the RabbitMQ that --bus rabbitmq uses, amqp://user:password@host:5672/vhost (needed then)",
    ),
    "database_url": Source("--database-url", "DATABASE_URL", "one database for every service"),
    "data_dir": Source(
        "--data-dir", "DATA_DIR", "where SQLite files and the embedded Redis live", Path
    ),
    "namespace": Source("--namespace", "BUS_NAMESPACE", "prefix of every Redis key and channel"),
    "payment_failure_rate": Source(
        "--payment-failure-rate",
        "PAYMENT_FAILURE_RATE",
        "share of payments the mock declines, 0..1",
        _rate,
    ),
    "payment_seed": Source(
        "--payment-seed", "PAYMENT_SEED", "makes the mock's declines repeatable", int
    ),
    "log_level": Source("--log-level", "LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR", str.upper),
    "log_steps": Source(
        "--log-steps",
        "LOG_STEPS",
        "on: one line per saga step, at INFO (off by default: it costs time at speed, and "
        "each order's timeline keeps the same facts)",
        _switch,
    ),
    "log_sql": Source(
        "--log-sql",
        "LOG_SQL",
        "on: every SQL statement, at DEBUG (the database drivers' own lines); off by default, "
        "even at --log-level DEBUG",
        _switch,
    ),
    "log_format": Source(
        "--log-format",
        "LOG_FORMAT",
        "console, or json: one JSON object per line (default: console when stderr is a "
        "terminal, json otherwise)",
        _log_format,
    ),
    "bus": Source(
        "--bus",
        "BUS",
        "how events travel: pubsub, streams (kept in Redis until handled), or rabbitmq (kept in "
        "RabbitMQ's queues until handled; AMQP_URL)",
        _bus,
    ),
    "saga_deadline": Source(
        "--saga-deadline", "SAGA_DEADLINE", "seconds a purchase may take", _seconds
    ),
    "nudge_after": Source(
        "--nudge-after",
        "NUDGE_AFTER",
        "seconds without an outcome before a saga is driven again (then twice as long, …)",
        _seconds,
    ),
    "sweep_every": Source(
        "--sweep-every", "SWEEP_EVERY", "seconds between deadline sweeps", _seconds
    ),
    "reclaim_idle": Source(
        "--reclaim-idle",
        "RECLAIM_IDLE",
        "streams: seconds before another process takes over entries a dead one left",
        _seconds,
    ),
    "fault_drop": Source(
        "--fault-drop", "FAULT_DROP", "chaos: share of published events to lose", _rate
    ),
    "fault_duplicate": Source(
        "--fault-duplicate",
        "FAULT_DUPLICATE",
        "chaos: share of published events to send twice",
        _rate,
    ),
    "rate_limit": Source(
        "--rate-limit",
        "RATE_LIMIT",
        "requests each caller may make, e.g. 50/second or 50/second;1000/minute; off: none "
        f"(default: {DEFAULT_RATE_LIMIT} with auth on, off with auth off on loopback)",
        _rate_limit,
    ),
    "rate_limit_store": Source(
        "--rate-limit-store",
        "RATE_LIMIT_STORE",
        "where callers' counts live: memory (one process), or redis (several serve the API)",
        _rate_limit_store,
    ),
    "body_timeout": Source(
        "--body-timeout",
        "BODY_TIMEOUT",
        "seconds a client may take to send a request's body (then 408)",
        _seconds,
    ),
    "head_timeout": Source(
        "--head-timeout",
        "HEAD_TIMEOUT",
        "seconds a connection may take to send a request's head, from its start or from the "
        "answer before (then it is closed); also how long an idle connection is kept",
        _seconds,
    ),
    "bus_keys": Source(
        "--bus-keys",
        "BUS_KEYS",
        "keys that sign bus messages, id:secret[,id:secret…]: the first signs, all verify "
        "(unset: a key file beside the embedded Redis; required with a TCP REDIS_URL)",
        BusKeys.parse,
    ),
    "test_controls": Source(
        "--test-controls",
        "TEST_CONTROLS",
        "on: allow test-only controls such as setting the payment mock's decline rate while "
        "running (off by default)",
        _switch,
    ),
    "auth": Source(
        "--auth",
        "AUTH",
        "on: every request but the probes, docs and catalogue needs a bearer token (keys in "
        "AUTH_KEYS=kid:secret,…, the first signs); default: off on a loopback address, else on",
        _switch,
    ),
    "auth_keys": Source(
        "--auth-keys",
        "AUTH_KEYS",
        "keys that sign and check bearer tokens, kid:secret[,kid:secret…]: the first signs, all "
        "verify (secrets of 32 bytes or more)",
        parse_keys,
    ),
    "token_ttl": Source(
        "--token-ttl", "TOKEN_TTL", "seconds a token issued here stays valid", _seconds
    ),
    "processes": Source(
        "--processes",
        "PROCESSES",
        "N or auto (one per core): deal the services over N processes answering on the one port "
        "(one Python process is one core)",
        _processes,
    ),
    "reuse_port": Source(
        "--reuse-port",
        "REUSE_PORT",
        "on: bind the port with SO_REUSEPORT, beside other processes (what --processes asks of "
        "its children)",
        _switch,
    ),
    "retain": Source(
        "--retain",
        "RETAIN",
        "how long the step rows, notifications and replayed dead letters of a settled order "
        "are kept: 30d (the default), 12h, or seconds; at least an hour",
        _retention,
    ),
    "migrate": Source(
        "--migrate",
        "MIGRATE",
        "on: bring each service's database to the code's latest migration at start; off: "
        "refuse to start on a database that is behind (for operators who run `run.py migrate` "
        "as a step of its own)",
        _switch,
    ),
}

_ENVIRONMENT_ONLY = frozenset({"bus_keys", "redis_url", "amqp_url", "database_url", "auth_keys"})
"""Secrets: a child process gets them in its environment, never on its command line (which
any user of the machine can read)."""


def add_arguments(parser: argparse.ArgumentParser, only: Collection[str] | None = None) -> None:
    """A flag for each setting (of those named in `only`, if given)."""
    for name, source in _SOURCES.items():
        if only is not None and name not in only:
            continue
        parser.add_argument(
            source.flag, dest=name, default=None, help=f"{source.help} [{source.env}]"
        )


def load(
    args: argparse.Namespace,
    environ: Mapping[str, str] = os.environ,
    defaults: Mapping[str, str] | None = None,
) -> Settings:
    """Merge flags, environment and defaults (a command's own, then the general ones); raise
    ValueError naming the bad setting."""
    raw: dict[str, str] = {}
    for name, source in _SOURCES.items():
        value = getattr(args, name, None)
        if value is None:
            value = environ.get(source.env, (defaults or {}).get(name))
        if value is not None:
            raw[name] = value
    settings = Settings(**{name: _convert(name, value) for name, value in raw.items()})
    return _with_service_urls(settings, environ)


def to_flags(settings: Settings, only: Collection[str] | None = None) -> list[str]:
    """The command line that gives another process these settings (per-service database URLs
    travel in the environment: see `service_environment`); only those named in `only`, for a
    command that takes only those."""
    flags: list[str] = []
    for name, source in _SOURCES.items():
        value = getattr(settings, name)
        if name in _ENVIRONMENT_ONLY or (only is not None and name not in only):
            continue
        if name == "services":
            value = ",".join(value) or "none"
        if value is not None:
            flags += [source.flag, str(value)]
    return flags


def service_environment(settings: Settings) -> dict[str, str]:
    environment = {
        f"DATABASE_URL_{name.upper()}": url for name, url in settings.service_database_urls.items()
    }
    if settings.bus_keys is not None:
        environment["BUS_KEYS"] = settings.bus_keys.text()
    if settings.auth_keys:
        environment["AUTH_KEYS"] = ",".join(f"{k.kid}:{k.secret}" for k in settings.auth_keys)
    for name in _ENVIRONMENT_ONLY:
        if isinstance(value := getattr(settings, name), str):  # URLs that may hold a password
            environment[_SOURCES[name].env] = value
    return environment


def is_loopback(host: str) -> bool:
    """Only this machine can reach an address like 127.0.0.1, ::1 or localhost."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_enabled(settings: Settings) -> bool:
    """Explicit on or off, else on for any address other machines can reach."""
    return not is_loopback(settings.host) if settings.auth is None else settings.auth


def rate_limit_for(settings: Settings) -> str:
    """The limit set, else the default's rule, the same as auth's: a loopback address without
    auth is a developer's machine, where the bench, the monitor page and the original project's
    clients all come from one address; anywhere else, 50 a second per caller."""
    if settings.rate_limit is not None:
        return settings.rate_limit
    return DEFAULT_RATE_LIMIT if auth_enabled(settings) else "off"


def auth_warning(settings: Settings) -> str | None:
    """What to shout when auth was switched off on an address other machines can reach."""
    if settings.auth is False and not is_loopback(settings.host):
        return (
            f"AUTH IS OFF on {settings.host}, an address other machines can reach: anyone who "
            "reaches it can spend any player's money and read everything"
        )
    return None


def child_environment(settings: Settings, inherited: Mapping[str, str]) -> dict[str, str]:
    """The environment of a child process with these settings: this one's, less its database
    URLs and secrets (the child must get the settings', not whatever this process was given)."""
    mine = {_SOURCES[name].env for name in _ENVIRONMENT_ONLY}
    kept = {
        k: v for k, v in inherited.items() if k not in mine and not k.startswith("DATABASE_URL")
    }
    return {**kept, **service_environment(settings)}


def _convert(name: str, value: str) -> Any:
    source = _SOURCES[name]
    try:
        return source.convert(value)
    except ValueError as error:
        raise ValueError(f"{source.flag}: {error}") from None


def check_auth(settings: Settings) -> None:
    """Refuse a front door that would take tokens without a key to check them with."""
    if settings.port and auth_enabled(settings) and not settings.auth_keys:
        why = "--auth on" if settings.auth else f"--host {settings.host} is not a loopback address"
        raise ValueError(
            f"auth is on ({why}) but AUTH_KEYS is empty: set AUTH_KEYS=kid:secret (a secret of "
            "32 bytes or more; `python -c 'import secrets; print(secrets.token_urlsafe(32))'`), "
            "or bind 127.0.0.1, or say --auth off to serve without it"
        )


def needs_redis(settings: Settings) -> bool:
    """Whether the process needs Redis: for its events (Pub/Sub, Streams), with the requests and
    the monitor, or for rate limits shared by processes; on RabbitMQ alone it does not."""
    return settings.bus != "rabbitmq" or settings.rate_limit_store == "redis"


def check_bus(settings: Settings) -> None:
    """Refuse RabbitMQ without saying which: its URL holds a password, so no default guesses."""
    if settings.bus == "rabbitmq" and settings.amqp_url is None:
        raise ValueError(NO_AMQP_URL)


def _with_service_urls(settings: Settings, environ: Mapping[str, str]) -> Settings:
    urls = {
        service: environ[f"DATABASE_URL_{service.upper()}"]
        for service in SERVICE_NAMES
        if environ.get(f"DATABASE_URL_{service.upper()}")
    }
    return replace(settings, service_database_urls=urls) if urls else settings
