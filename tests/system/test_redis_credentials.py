"""A Redis that asks for a password: a wrong one stops `python -m sagashop` with one clear line
that does not show it, and a user that the README's ACL recipe confines to one namespace's keys
and channels runs whole purchases on both transports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from sagashop.chaos.processes import free_port
from sagashop.embedded_redis import redis_server_binary
from sagashop.transport.claims import DeliveryClaims
from sagashop.transport.signing import Signer
from tests.support import BUSES, TEST_BUS_KEYS, make_settings, on_bus, started_shop

ADMIN_PASSWORD = "admin-pw-for-tests"
SHOP_PASSWORD = "shop-pw-for-tests"
WRONG = "wrong-pw-9f3c"
NAMESPACE = "acl-test"
ACL_RULES = (
    f"~{NAMESPACE}:* resetchannels &{NAMESPACE}:* -@all +ping +hello +auth +client|setinfo "
    "+publish +subscribe +unsubscribe +set +xadd +xgroup|create +xreadgroup "
    "+xack +xautoclaim +evalsha +script|load +lpush +ltrim +lindex +expire +get +mget"
)
"""The README's recipe: what `INFO commandstats` counted over purchases on both transports with
the rate limits' counts in Redis (the last five are the `limits` library's scripts). The keys
and channels are the namespace's only; `resetchannels` because Redis 6 starts a user with all.
`get` and `mget`: a process that loses a delivery claim reads it (is it signed?), and takes a
squatted one over by a script that reads and sets it."""


@dataclass(frozen=True)
class SecuredRedis:
    port: int
    admin: redis.Redis

    def refusals(self) -> list[str]:
        """What Redis refused the `sagashop` user, but for `CLIENT SETINFO`: Redis before 7.2
        does not know it, and redis-py goes on without it."""
        entries = self.admin.execute_command("ACL", "LOG")
        mine = [e for e in entries if e[b"username"] == b"sagashop" and e[b"reason"] != b"auth"]
        return [f"{e[b'reason']!r} {e[b'object']!r}" for e in mine if e[b"object"] != b"client"]

    def url(self, user: str, password: str) -> str:
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, OSError):
        return False


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    """A throwaway redis-server with a password for `default` and a `sagashop` user confined
    to `NAMESPACE`."""
    port, workdir = free_port(), tmp_path_factory.mktemp("secured-redis")
    server = subprocess.Popen(
        [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--requirepass", ADMIN_PASSWORD],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    admin = redis.Redis(port=port, password=ADMIN_PASSWORD, socket_timeout=5)
    try:
        deadline = time.monotonic() + 10
        while not _answers(admin):
            assert server.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
            time.sleep(0.01)  # polling a starting server, not waiting for a guessed duration
        admin.execute_command(
            "ACL", "SETUSER", "sagashop", "reset", "on", f">{SHOP_PASSWORD}", *ACL_RULES.split()
        )  # fmt: skip
        yield SecuredRedis(port, admin)
    finally:
        admin.close()
        server.terminate()
        server.wait(timeout=10)


def start_with(url: str, tmp_path: Path, log_format: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_FORMAT")}
    env["BUS_KEYS"] = "test:sagashop-tests-bus-key-not-secret"
    argv = ["--redis-url", url, "--port", "0", "--data-dir", str(tmp_path), "--log-format"]
    return subprocess.run(
        [sys.executable, "-m", "sagashop", *argv, log_format],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("log_format", ["console", "json"])
def test_a_wrong_password_stops_the_start_with_a_clear_line_without_it(
    secured: SecuredRedis, tmp_path: Path, log_format: str
) -> None:
    done = start_with(secured.url("default", WRONG), tmp_path, log_format)

    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "refused the user and password of REDIS_URL" in output
    assert f"redis://default:***@127.0.0.1:{secured.port}/0" in output
    assert WRONG not in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1, output


@pytest.mark.parametrize("bus", BUSES)
async def test_a_user_confined_to_the_namespace_completes_a_purchase(
    secured: SecuredRedis, tmp_path: Path, bus: str
) -> None:
    url = secured.url("sagashop", SHOP_PASSWORD)
    settings = make_settings(
        url, tmp_path, None, namespace=NAMESPACE, bus=bus, reclaim_idle=1.0,
        rate_limit="1000/second", rate_limit_store="redis",
    )  # fmt: skip

    async with on_bus(settings), started_shop(settings) as shop:
        user, item = await shop.new_user(balance=5_000), await shop.new_item(price=2_000)
        view = await shop.settle((await shop.buy(user, item, 2))["id"])
        assert view["status"] == "COMPLETED", view
        assert (await shop.balance(user), await shop.bag(user)) == (1_000, {item: 2})
        assert (await shop.ok("GET", "/readyz"))["ready"] is True
        assert (await shop.ok("GET", "/audit"))["ok"] is True
    assert secured.refusals() == []


def test_the_confined_user_cannot_touch_another_namespace(secured: SecuredRedis) -> None:
    client = redis.Redis.from_url(secured.url("sagashop", SHOP_PASSWORD))
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("other:key", "x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.publish("other:channel", "x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command("FLUSHALL")
    finally:
        client.close()


async def test_the_confined_user_claims_deliveries_lost_and_squatted_ones_too(
    secured: SecuredRedis,
) -> None:
    """What two replicas do with one delivery, and one a squatter took, under the user."""
    secured.admin.execute_command("ACL", "LOG", "RESET")  # what the tests before provoked
    client = AsyncRedis.from_url(secured.url("sagashop", SHOP_PASSWORD), decode_responses=True)
    try:
        signer = Signer(TEST_BUS_KEYS, NAMESPACE)
        first, second = DeliveryClaims(client, signer, "a"), DeliveryClaims(client, signer, "b")
        taken, squatted = f"{NAMESPACE}:claim:user:one", f"{NAMESPACE}:claim:user:two"
        await client.set(squatted, "1")
        assert await first.claim([taken]) == [True]
        assert await second.claim([taken, squatted]) == [False, True]
    finally:
        await client.aclose()
    assert secured.refusals() == []
