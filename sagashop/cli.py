"""The command line: serve (the default) and the commands below. `run.py` and `python -m sagashop`
call `main`.

    python run.py                        everything in one process, on http://127.0.0.1:3000
    python run.py --services order,user  a subset; run the rest elsewhere on the same Redis
    python run.py --processes auto       the services dealt over one process per core, one port
    python run.py audit [--url URL]      check the books of a running system; exit 1 if off
    python run.py dead-letters list|replay ID|replay --all [--service S] [--url URL]
    python run.py backup [--url URL]     a consistent copy of the SQLite files, while it runs
    python run.py chaos                  purchases under faults, ending with the audit
    python run.py bench                  purchases through the front door, then the figures
    python run.py token --user ID        a bearer token for a player (--operator: an operator's)
    python run.py migrate [--dry-run]    bring the databases to the code's latest migration
    python run.py makemigrations         write the migrations that bring them level with the models
    python run.py COMMAND --help         every setting, with its environment variable
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from typing import Any

import sagashop.audit as audit
import sagashop.config as config
import sagashop.remote as remote
import sagashop.tokens as tokens
import sagashop.tracing as tracing
from sagashop.actors import SERVICE_NAMES, SERVICES
from sagashop.bench import run as bench
from sagashop.bootstrap import running_node, store_for
from sagashop.chaos import run as chaos
from sagashop.credentials import RedisRefused
from sagashop.embedded_redis import NoRedisServer, embedded_redis
from sagashop.errors import Unavailable
from sagashop.http import create_app, server
from sagashop.logs import configure_logging
from sagashop.store import Store
from sagashop.store.schema import SchemaError, detect_changes, format_migration_name
from sagashop.supervisor import supervise
from sagashop.tracing import TracingMisconfigured
from sagashop.transport.signing import NoBusKeys, keys_for

log = logging.getLogger("sagashop")


def serve(settings: config.Settings, _args: argparse.Namespace) -> int:
    if settings.processes > 1:
        return supervise(settings)
    spans = tracing.from_environment()
    try:
        server.serve(
            create_app(settings, tracing=spans),
            new_event_loop(),
            settings.host,
            settings.port,
            reuse_port=settings.reuse_port or None,
        )
    finally:
        if spans is not None:
            spans.shutdown()
    return 0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it installs: the loop runs every statement's and every message's hand-off,
    and uvloop's cost less (docs/performance.md); asyncio's own elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help="ask this front door (e.g. http://127.0.0.1:3000) from anywhere, instead of the "
        f"system's Redis; with auth on, an operator's token in {remote.TOKEN_VARIABLE}",
    )


def check_books(settings: config.Settings, args: argparse.Namespace) -> int:
    """Exit 0 if the audit finds nothing, 1 if it finds violations, 2 if it cannot run."""

    async def run() -> dict[str, Any]:
        if args.url:
            return dict(await remote.FrontDoor(args.url).call("GET", "/audit"))
        async with running_node(replace(settings, services=())) as node:
            return audit.check(await audit.gather(node.ask)).to_dict()

    try:
        report = asyncio.run(run())
    except Unavailable as error:
        print(f"cannot audit: {error.message}", file=sys.stderr)
        return 2
    except remote.RemoteError as error:
        print(f"cannot audit: {error}", file=sys.stderr)
        return 2
    print("\n".join(audit.lines_of(report)))
    return 0 if report["ok"] else 1


def add_dead_letter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "replay"])
    parser.add_argument("letter", nargs="?", help="replay: the letter's id, e.g. item-3")
    parser.add_argument(
        "--all", action="store_true", help="replay: every letter that waits for a replay"
    )
    parser.add_argument("--service", choices=SERVICE_NAMES, help="only this service's letters")
    add_front_door_argument(parser)


def add_front_door_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:3000",
        help=f"the front door (http://127.0.0.1:3000); an operator's token in "
        f"{remote.TOKEN_VARIABLE} when its auth is on",
    )


def back_up(_settings: config.Settings, args: argparse.Namespace) -> int:
    """Have the running system copy its SQLite files, consistently, without stopping; print
    where. Exit 2, saying why, if it cannot (not SQLite, services split, not reachable)."""
    try:
        taken = asyncio.run(remote.FrontDoor(args.url).call("POST", "/backups"))
    except remote.RemoteError as error:
        print(f"backup: {error}", file=sys.stderr)
        return 2
    print(f"backed up in {taken['tookMs']:.0f} ms to {taken['path']} (on the server):")
    print("\n".join(f"  {copy}" for copy in taken["files"]))
    return 0


def dead_letters(_settings: config.Settings, args: argparse.Namespace) -> int:
    """List the dead letters, or replay one or all not yet replayed; exit 2, saying why, if the
    front door cannot be asked or refuses."""
    if args.action == "replay" and bool(args.letter) == args.all:
        print("replay: name one letter, or say --all", file=sys.stderr)
        return 2
    door = remote.FrontDoor(args.url)
    try:
        asyncio.run(_act_on_letters(door, args))
    except remote.RemoteError as error:
        print(f"dead-letters: {error}", file=sys.stderr)
        return 2
    return 0


async def _act_on_letters(door: remote.FrontDoor, args: argparse.Namespace) -> None:
    if args.action == "replay" and args.letter:
        await _replay(door, args.letter)
        return
    found = 0
    async for letter in door.dead_letters(args.service):
        if args.action == "list":
            print(remote.letter_line(letter))
            found += 1
        elif not letter["replayedAt"] and not letter["closedWith"]:
            await _replay(door, letter["id"])
            found += 1
    print(f"{found} dead letter(s) {'listed' if args.action == 'list' else 'replayed'}")


async def _replay(door: remote.FrontDoor, letter_id: str) -> None:
    replayed = await door.call("POST", f"/dead-letters/{letter_id}/replay")
    print(f"replayed {replayed['replayed']} (order {replayed['orderId']})")


def add_token_arguments(parser: argparse.ArgumentParser) -> None:
    whom = parser.add_mutually_exclusive_group(required=True)
    whom.add_argument("--user", metavar="ID", help="a player's token, for this user id")
    whom.add_argument("--operator", action="store_true", help="an operator's token")


def print_token(settings: config.Settings, args: argparse.Namespace) -> int:
    """Print a token signed with the first of AUTH_KEYS; exit 2, saying why, if there is none
    or the user id is not one."""
    if not settings.auth_keys:
        return _cannot_issue("no AUTH_KEYS to sign with (AUTH_KEYS=kid:secret,…)")
    try:
        claims = tokens.OPERATOR if args.operator else tokens.player(args.user)
    except ValueError:
        return _cannot_issue(f"{args.user!r} is not a user id (a UUID)")
    print(tokens.issue(settings.auth_keys, claims, settings.token_ttl))
    return 0


def _cannot_issue(reason: str) -> int:
    print(f"cannot issue a token: {reason}", file=sys.stderr)
    return 2


def add_migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run", action="store_true", help="print the SQL it would run, and change nothing"
    )


def migrate(settings: config.Settings, args: argparse.Namespace) -> int:
    """Bring each of `--services` to the code's latest migration, on its own (`--migrate off`
    servers refuse to start until this has run); exit 1, saying why, if one cannot be."""
    store = store_for(settings, [s for s in SERVICES if s.name in settings.services])
    try:
        lines = store.context().run(asyncio.run, _migrated(store, args.dry_run))
    except SchemaError as error:
        log.error("%s", error)
        return 1
    print("\n".join(lines))
    return 0


async def _migrated(store: Store, dry_run: bool) -> list[str]:
    await store.connect()
    lines: list[str] = []
    try:
        for migrator in store.migrators():
            if dry_run:
                lines += await migrator.sql()
                continue
            done = await migrator.migrate()
            at = (await migrator.position()).current
            lines += [f"{migrator.service}: {line}" for line in done]
            lines.append(f"{migrator.service}: at {at}" + ("" if done else ", nothing to apply"))
    finally:
        await store.close()
    return lines


def add_makemigrations_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="what the migration does, for its file name")


def make_migrations(_settings: config.Settings, args: argparse.Namespace) -> int:
    """Write the migrations that bring each service's migrations level with its models
    (Tortoise's autodetector); review them, and commit them with the models."""
    writers = asyncio.run(detect_changes({str(s.name): s.models for s in SERVICES}))
    if not writers:
        print("no changes: the migrations match the models")
    for writer in writers:
        if args.name:
            writer.name = format_migration_name(int(writer.name.split("_", 1)[0]), args.name)
        print(f"{writer.app_label}: wrote {writer.write()}")
    return 0


@dataclass(frozen=True)
class Command:
    run: Callable[[config.Settings, argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda _parser: None
    defaults: Mapping[str, str] = field(default_factory=dict)
    """Its own defaults for general settings: below flags and environment, above the rest."""
    needs_redis: bool = True
    """False for a command that brings its own Redis (the chaos run restarts it)."""
    needs_broker: bool = True
    """False for a command that brings its own RabbitMQ (the chaos run restarts it too), so
    `--bus rabbitmq` needs no AMQP_URL."""
    settings: Collection[str] | None = None
    """The general settings it takes as flags; None: all of them, for a command that runs a
    system or starts one (serve, chaos, bench). The environment still gives every setting."""


LOGS = ("log_level", "log_format")
BUS = ("redis_url", "redis_insecure", "namespace", "bus", "data_dir", *LOGS)
COMMANDS = {
    "serve": Command(serve),
    "audit": Command(check_books, add_audit_arguments, settings=BUS),
    "chaos": Command(
        chaos.command, chaos.add_arguments, chaos.DEFAULTS, needs_redis=False, needs_broker=False
    ),
    "bench": Command(bench.command, bench.add_arguments, bench.DEFAULTS, needs_redis=False),
    "token": Command(
        print_token, add_token_arguments, needs_redis=False, settings=("token_ttl", *LOGS)
    ),
    "migrate": Command(
        migrate,
        add_migrate_arguments,
        needs_redis=False,
        settings=("database_url", "data_dir", "services", *LOGS),
    ),
    "makemigrations": Command(
        make_migrations, add_makemigrations_arguments, needs_redis=False, settings=LOGS
    ),
    "dead-letters": Command(
        dead_letters, add_dead_letter_arguments, needs_redis=False, settings=LOGS
    ),
    "backup": Command(back_up, add_front_door_argument, needs_redis=False, settings=LOGS),
}


LEFT_RUNNING_GRACE = 5.0
"""Seconds the process waits, once `main` returned, for threads still running to end."""


def run_as_program() -> int:
    """`run.py` and `python -m sagashop`: `main`, in a process whose `kill -USR1` writes every
    thread's stack to stderr (how a stuck process tells where it is stuck), and which ends once
    `main` returned, whatever threads a way out left running."""
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    code = main()
    end_despite_threads_left(code)
    return code


def end_despite_threads_left(code: int) -> None:
    """Python waits for every non-daemon thread before it exits: a database connection's
    thread that a way out left open (a signal at the wrong moment of start-up, say) would keep
    the process alive for good, under `docker stop` or Kubernetes until they kill it. Give them
    a moment, then say which were left and exit anyway."""
    deadline = time.monotonic() + LEFT_RUNNING_GRACE
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon]
    left = [name for name in left if name != threading.main_thread().name]
    if left:
        log.warning("threads left running at exit: %s; exiting anyway", ", ".join(left))
        logging.shutdown()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        print(
            f"run.py: unknown command {argv[0]!r} (commands: {', '.join(COMMANDS)}; run.py --help)",
            file=sys.stderr,
        )
        return 2
    name = argv[0] if argv else "serve"
    name = name if name in COMMANDS else "serve"
    command = COMMANDS[name]
    parser = argparse.ArgumentParser(
        prog=f"run.py {name}", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"sagashop {version('sagashop')}")
    config.add_arguments(parser, command.settings)
    command.add_arguments(parser)
    args = parser.parse_args(argv[1:] if name in argv[:1] else argv)
    try:
        settings = config.load(args, defaults=command.defaults)
        if command.needs_broker:
            config.check_bus(settings)
        if name == "serve":
            config.check_auth(settings)
    except ValueError as error:
        parser.error(str(error))
    configure_logging(settings)
    if not command.needs_redis:
        return command.run(settings, args)
    try:
        with redis_for(settings) as settings:
            return command.run(settings, args)
    except (NoRedisServer, RedisRefused, NoBusKeys, SchemaError, TracingMisconfigured) as error:
        log.error("%s", error)
        return 1


@contextmanager
def redis_for(settings: config.Settings) -> Iterator[config.Settings]:
    """The settings with a Redis, the one named or an embedded one serving the data directory,
    unless nothing needs one (RabbitMQ carries the bus, the rate limits are counted in memory);
    and the keys that sign the bus (`NoBusKeys` if a bus over the network comes without)."""
    if settings.redis_url is None and not config.needs_redis(settings):
        keys = keys_for(settings.amqp_url or "", settings.bus_keys, settings.data_dir)
        yield replace(settings, bus_keys=keys)
        return
    if settings.redis_url is not None:
        yield replace(settings, bus_keys=keys_for(settings.redis_url, settings.bus_keys))
        return
    with embedded_redis(settings.data_dir) as url:
        yield replace(settings, redis_url=url, bus_keys=keys_for(url, settings.bus_keys))
