"""The command line: each command takes and shows only its own flags, says its version, names
an unknown command as such, and asks a front door as an operator with the token it is given."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sagashop import cli, remote
from sagashop.config import Settings, needs_redis


def test_an_unknown_command_is_named_as_such(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["audti"]) == 2
    said = capsys.readouterr().err
    assert "unknown command 'audti'" in said
    assert "audit" in said


def test_the_version_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as leaving:
        cli.main(["--version"])
    assert leaving.value.code == 0
    assert capsys.readouterr().out.startswith("sagashop 0.")


@pytest.mark.parametrize(
    ("command", "needed"),
    [
        ("audit", []),
        ("token", ["--operator"]),
        ("migrate", []),
        ("makemigrations", []),
        ("dead-letters", ["list"]),
        ("backup", []),
    ],
)
def test_a_command_shows_and_takes_only_its_own_flags(
    command: str, needed: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    shown = capsys.readouterr().out
    assert "--payment-failure-rate" not in shown, "a serve flag, of no use here"
    assert "--log-level" in shown
    with pytest.raises(SystemExit) as refused:
        cli.main([command, *needed, "--payment-failure-rate", "0.5"])
    assert refused.value.code == 2
    assert "unrecognized arguments: --payment-failure-rate" in capsys.readouterr().err


def test_serve_and_the_commands_that_start_a_system_take_every_setting() -> None:
    for name in ("serve", "chaos", "bench"):
        assert cli.COMMANDS[name].settings is None
    taken = {name for command in cli.COMMANDS.values() for name in command.settings or ()}
    assert taken <= set(Settings.__dataclass_fields__)


async def test_the_front_door_is_asked_with_the_operators_token_from_the_environment() -> None:
    seen: list[str | None] = []

    async def audit(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({"ok": True, "counts": {}, "violations": []})

    app = web.Application()
    app.router.add_get("/audit", audit)
    async with TestServer(app) as server:
        url = str(server.make_url("/"))
        await remote.FrontDoor(url, {remote.TOKEN_VARIABLE: "t0ken"}).call("GET", "/audit")
        await remote.FrontDoor(url, {}).call("GET", "/audit")
    assert seen == ["Bearer t0ken", None]


async def test_a_refusal_is_said_with_the_front_doors_own_words() -> None:
    async def refuse(_request: web.Request) -> web.Response:
        body = {"error": {"code": "unauthorized", "message": "a bearer token is required"}}
        return web.json_response(body, status=401)

    app = web.Application()
    app.router.add_get("/audit", refuse)
    async with TestServer(app) as server:
        with pytest.raises(remote.RemoteError, match="answered 401: a bearer token is required"):
            await remote.FrontDoor(str(server.make_url("/")), {}).call("GET", "/audit")


def test_a_thread_a_way_out_left_running_does_not_keep_the_process_alive() -> None:
    """Seen once: the main thread returned, and a database connection's thread (non-daemon,
    never closed) kept the process alive for good. `run_as_program` ends it anyway, saying so."""
    script = (
        "import threading, time, logging; from sagashop import cli;"
        "logging.basicConfig();"
        "threading.Thread(target=time.sleep, args=(3600,), name='left-open').start();"
        "cli.end_despite_threads_left(3)"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3
    assert time.monotonic() - started < cli.LEFT_RUNNING_GRACE + 10
    assert "threads left running at exit: left-open" in done.stderr


def test_on_rabbitmq_alone_no_redis_is_started(tmp_path: Path) -> None:
    """The bus on a broker on this machine, rate limits in memory: no embedded Redis, and the
    key that signs the bus kept in the data directory."""
    alone = Settings(
        bus="rabbitmq", amqp_url="amqp://guest:guest@127.0.0.1:5672/", data_dir=tmp_path
    )
    with cli.redis_for(alone) as settings:
        assert settings.redis_url is None
        assert settings.bus_keys is not None
        assert [path.name for path in tmp_path.iterdir()] == ["bus.key"]
    assert needs_redis(replace(alone, rate_limit_store="redis")), "limits shared by processes"
