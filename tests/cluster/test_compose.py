"""compose.yaml, run as Docker Compose would run it, without Docker (which cannot run here): each
container's exact command and environment (the compose file's over the image's `ENV`, its
`${…}` filled from made-up secrets of `.env.example`'s names) as a local process. Only what a
container has of its own is mapped: its hostname (`redis`, `postgres`) to 127.0.0.1 and its
port to a free one, its data directory to a temporary one, and the `postgres` container to a
fresh database of the machine's PostgreSQL under the compose file's user. Then a purchase
through the front door, as a player with the token an operator's setup gave, and the audit:
a setting missing from the file (an unsigned bus, a Redis without its password, no auth keys)
fails it here, as it would crash-loop the containers.

The RabbitMQ variant (compose.rabbitmq.yaml over compose.yaml) runs the same way on this
machine's broker: its `rabbitmq` container is that broker, healthy by the container's own check,
with the user, vhost and permissions of the container's definitions created on it under names of
the test's own (the broker is shared), and deleted afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiohttp
import asyncpg
import pytest
from aiormq.exceptions import ChannelAccessRefused
from redis.asyncio import Redis

from sagashop.chaos.processes import free_port
from sagashop.embedded_redis import redis_server_binary
from tests.compose import ROOT, VARIANTS, compose, image_environment, made_up_secrets
from tests.support import AMQP_URL, POSTGRES_URL, REQUIRE_SERVICES, database, eventually

START_WITHIN = 90.0
STOP_WITHIN = 15.0


@dataclass
class Container:
    """One container of the compose file, as a local process."""

    name: str
    argv: list[str]
    environment: dict[str, str]
    log: Path
    health: list[str] | None = None
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.environment, cwd=ROOT, stdout=out, stderr=out
            )
        if self.health is not None:
            await eventually(self._healthy, within=START_WITHIN)

    async def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
        assert self.health is not None
        check = await asyncio.create_subprocess_exec(
            *self.health,
            env=self.environment,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await check.wait() == 0

    async def stop(self) -> int | None:
        """SIGTERM, as `docker compose down` sends it, and the exit code."""
        if self.process is None or self.process.returncode is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), STOP_WITHIN)


@asynccontextmanager
async def compose_database(user: str, password: str) -> AsyncIterator[str]:
    """A fresh database of the machine's PostgreSQL, owned by the compose file's user."""
    async with database("postgres") as url:
        assert url is not None
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            exists = await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", user)
            if not exists:
                await admin.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
            await admin.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" OWNER TO {user}')
        finally:
            await admin.close()
        yield url.rsplit("/", 1)[1]


def redis_container(spec: dict[str, Any], port: int, data: Path) -> Container:
    """The `redis` container's command, with its port and data directory here."""
    command = spec["command"]
    assert command[0] == "redis-server"
    argv = [redis_server_binary(), *command[1:], "--port", str(port), "--dir", str(data)]
    return Container("redis", argv, {"PATH": os.environ["PATH"]}, data / "redis.log")


def shop_container(name: str, spec: dict[str, Any], hosts: dict[str, str], data: Path) -> Container:
    """A container built from this repository: `python run.py` with its command, in its
    environment (the compose file's over the image's), its hostnames and port mapped."""
    environment = {**image_environment(), **spec["environment"]}
    for key, value in environment.items():
        for host, here in hosts.items():
            value = value.replace(host, here)
        environment[key] = value
    environment |= {"PORT": str(free_port()), "DATA_DIR": str(data / name)}
    environment |= {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1"}
    environment["PAYMENT_FAILURE_RATE"] = "0"  # the mock's random decline (10%) is not tested here
    test = spec["healthcheck"]["test"]
    health = [sys.executable, *test[2:]] if test[:2] == ["CMD", "python"] else None
    argv = [sys.executable, "run.py", *spec["command"]]
    return Container(name, argv, environment, data / f"{name}.log", health)


def starting_order(services: dict[str, Any]) -> list[str]:
    """The containers built here, each after those it depends on."""
    ours = [name for name, spec in services.items() if spec.get("build") == "."]
    ordered: list[str] = []
    while len(ordered) < len(ours):
        ordered += [
            name
            for name in ours
            if name not in ordered
            and all(dep in ordered or dep not in ours for dep in services[name]["depends_on"])
        ]
    return ordered


async def token_for_operator(door: Container) -> str:
    """`run.py token --operator`, as an operator runs it with the compose file's keys."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "run.py",
        "token",
        "--operator",
        env=door.environment,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    assert await child.wait() == 0
    return out.decode().strip()


async def buy_and_audit(url: str, operator: str) -> dict[str, Any]:
    """An operator's setup, a player's purchase with the token it gave, and the audit once
    nothing is in flight."""
    as_operator = {"Authorization": f"Bearer {operator}"}
    async with aiohttp.ClientSession(base_url=url) as http:
        async with http.post("/setup-test-data", headers=as_operator) as answer:
            assert answer.status == 200, await answer.text()
            data = (await answer.json())["data"]
        as_player = {"Authorization": f"Bearer {data['token']}"}
        body = {"userId": data["user"]["id"], "itemId": data["items"][0]["id"], "quantity": 1}
        async with http.post("/orders", json=body, headers=as_player) as answer:
            assert answer.status == 201, await answer.text()
            order_id = (await answer.json())["id"]
        async with http.get(f"/orders/{order_id}/status?wait=30", headers=as_player) as answer:
            assert (await answer.json())["status"] == "COMPLETED"

        async def audit() -> dict[str, Any]:
            async with http.get("/audit", headers=as_operator) as answer:
                assert answer.status == 200, await answer.text()
                report: dict[str, Any] = await answer.json()
                return report

        return await eventually(audit, lambda report: report["counts"]["in flight"] == 0)


async def test_the_compose_file_starts_a_system_that_sells_and_audits_clean(
    tmp_path: Path,
) -> None:
    secrets = made_up_secrets()
    await sells_and_audits_clean(compose(secrets)["services"], secrets, {}, tmp_path)


@pytest.mark.rabbitmq
async def test_the_rabbitmq_variant_starts_a_system_that_sells_and_audits_clean(
    tmp_path: Path,
) -> None:
    secrets = made_up_secrets()
    composed = compose(secrets, VARIANTS["rabbitmq"])
    definitions = json.loads(composed["configs"]["rabbitmq-definitions"]["content"])
    async with broker_account(definitions) as mapped:
        health = composed["services"]["rabbitmq"]["healthcheck"]["test"]
        assert health[0] == "CMD"
        await eventually(lambda: _succeeds(health[1:]), within=START_WITHIN)
        await sells_and_audits_clean(composed["services"], secrets, mapped, tmp_path)
        amqp_url = composed["services"]["front-door"]["environment"]["AMQP_URL"]
        await _refused_beyond_the_namespace(_replaced(amqp_url, mapped))


async def sells_and_audits_clean(
    services: dict[str, Any], secrets: dict[str, str], mapped: dict[str, str], tmp_path: Path
) -> None:
    """Redis and the containers built here started as the compose file says (`mapped`: what
    else to map besides Redis and PostgreSQL), a purchase, the audit, and a clean stop."""
    redis_port = free_port()
    async with (
        compose_database("sagashop", secrets["POSTGRES_PASSWORD"]) as database_name,
        AsyncExitStack() as running,
    ):
        hosts = {
            "@redis:6379/": f"@127.0.0.1:{redis_port}/",
            "@postgres:5432/sagashop": f"@127.0.0.1:5432/{database_name}",
            **mapped,
        }
        containers = [redis_container(services["redis"], redis_port, tmp_path)]
        containers += [
            shop_container(name, services[name], hosts, tmp_path)
            for name in starting_order(services)
        ]
        for container in containers:
            running.push_async_callback(container.stop)
        await containers[0].start()
        await eventually(lambda: _redis_answers(redis_port, secrets["REDIS_ADMIN_PASSWORD"]))
        for container in containers[1:]:
            await container.start()

        door = next(c for c in containers if c.name == "front-door")
        url = f"http://127.0.0.1:{door.environment['PORT']}"
        report = await buy_and_audit(url, await token_for_operator(door))
        assert report["ok"], report["violations"]
        assert report["counts"]["orders"] == 1

        stopped = [await container.stop() for container in reversed(containers)]
        assert stopped[:-1] == [0] * (len(containers) - 1), "each app container stops cleanly"


@asynccontextmanager
async def broker_account(definitions: dict[str, Any]) -> AsyncIterator[dict[str, str]]:
    """The definitions' one user and vhost on this machine's broker, under names of this test's
    own, with the definitions' password and permissions; deleted afterwards. Answers what to
    map in the containers' AMQP_URL: the user's and vhost's names, the `rabbitmq` host."""
    _rabbitmqctl_or_skip()
    (user,), (vhost,) = definitions["users"], definitions["vhosts"]
    (granted,) = definitions["permissions"]
    assert (granted["user"], granted["vhost"]) == (user["name"], vhost["name"])
    suffix = uuid.uuid4().hex[:8]
    name, where = f"{user['name']}-compose-{suffix}", f"{vhost['name']}-compose-{suffix}"
    _rabbitmqctl("add_vhost", where)
    try:
        _rabbitmqctl("add_user", name, user["password"])
        try:
            permissions = (granted[kind] for kind in ("configure", "write", "read"))
            _rabbitmqctl("set_permissions", "-p", where, name, *permissions)
            broker = urlsplit(AMQP_URL).netloc.rpartition("@")[2]
            yield {
                f"amqp://{user['name']}:": f"amqp://{name}:",
                f"@rabbitmq:5672/{vhost['name']}": f"@{broker}/{where}",
            }
        finally:
            _rabbitmqctl("delete_user", name)
    finally:
        _rabbitmqctl("delete_vhost", where)  # and every exchange and queue declared in it


def _rabbitmqctl_or_skip() -> None:
    if shutil.which("rabbitmqctl") is None:
        reason = "rabbitmqctl is not on PATH: the compose file's broker user cannot be created"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, check=True, timeout=60)


async def _succeeds(command: list[str]) -> bool:
    check = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await check.wait() == 0


def _replaced(value: str, mapped: dict[str, str]) -> str:
    for there, here in mapped.items():
        value = value.replace(there, here)
    return value


async def _refused_beyond_the_namespace(amqp_url: str) -> None:
    """The containers' broker user cannot declare what another namespace would use."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        with pytest.raises(ChannelAccessRefused):
            await channel.declare_exchange("other:events", aio_pika.ExchangeType.TOPIC)
    finally:
        await connection.close()


async def _redis_answers(port: int, password: str) -> bool:
    client = Redis(host="127.0.0.1", port=port, password=password)
    try:
        return bool(await client.ping())
    except OSError:
        return False
    finally:
        await client.aclose()
