"""A process as a supervisor meets it, started as the README says (`python run.py`: an embedded
Redis, SQLite files): SIGTERM at any moment of its start-up, under load, or during its own
shutdown ends it within seconds, its Redis with it; and its embedded Redis, killed, is started
again, so that /readyz is 200 again and /health agrees."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import aiohttp
import pytest

from sagashop.chaos.processes import free_port
from tests.support import eventually

STOP_WITHIN = 10.0
ROUNDS = 3
SEED = 20261203
"""The moments are random, and the same on every run."""


@asynccontextmanager
async def as_run_py_starts_it(
    data_dir: Path, log: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`python -m sagashop` with an embedded Redis and SQLite files in `data_dir`; killed on the
    way out if a test left it running."""
    port = free_port()
    argv = [sys.executable, "-m", "sagashop", "--port", str(port), "--data-dir", str(data_dir)]
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, "--log-format", "json", stdout=out, stderr=out
        )
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as answer:
            return answer.status == 200
    except aiohttp.ClientError:
        return False


async def stopped_within(process: asyncio.subprocess.Process, log: Path) -> float:
    started = time.monotonic()
    try:
        await asyncio.wait_for(process.wait(), STOP_WITHIN)
    except TimeoutError:
        raise AssertionError(f"still running {STOP_WITHIN}s after SIGTERM:\n{tail(log)}") from None
    return time.monotonic() - started


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


def redis_of(data_dir: Path) -> list[int]:
    """The redis-server processes serving `data_dir`'s socket."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if str(data_dir.resolve() / "redis.sock") in cmdline.read_bytes().decode(
                errors="replace"
            ):
                found.append(int(cmdline.parent.name))
    return found


async def buying(url: str) -> None:
    """Purchases, one after another, until cancelled (or refused: the process is stopping)."""
    async with aiohttp.ClientSession(base_url=url) as http:
        while True:
            async with http.post("/setup-test-data") as answer:
                data = (await answer.json())["data"]
            body = {"userId": data["user"]["id"], "itemId": data["items"][2]["id"], "quantity": 1}
            async with http.post("/orders", json=body) as answer:
                await answer.read()


START_UP = (0.55, 0.65, 0.75, 0.85, 0.95, 1.0)
"""When the start-up rounds stop it, as fractions of the time a first start took to be ready:
its last part opens the stores and starts the node (a stop there once waited out the relay's
10 s flush, where no relay ran yet)."""


async def time_to_ready(tmp_path: Path) -> float:
    """How long a start takes on this machine, now: the start-up rounds are spread over it."""
    async with as_run_py_starts_it(tmp_path / "data-first", tmp_path / "first.log") as (
        process,
        url,
    ):
        started = time.monotonic()
        await eventually(lambda: ready(url), within=30, longest_wait=0.02)
        took = time.monotonic() - started
        process.send_signal(signal.SIGTERM)
        await stopped_within(process, tmp_path / "first.log")
    return took


async def test_sigterm_during_start_up_ends_the_process_within_seconds(tmp_path: Path) -> None:
    chance = random.Random(f"{SEED}-start-up")
    ready_after = await time_to_ready(tmp_path)
    for round_, share in enumerate(START_UP):
        data_dir, log = tmp_path / f"data-{round_}", tmp_path / f"{round_}.log"
        async with as_run_py_starts_it(data_dir, log) as (process, _url):
            moment = ready_after * share * chance.uniform(0.95, 1.05)
            await asyncio.sleep(moment)  # the moment the signal comes, not a wait
            process.send_signal(signal.SIGTERM)
            took = await stopped_within(process, log)
        assert took < STOP_WITHIN, f"round {round_}: SIGTERM {moment:.2f}s in"
        await eventually(partial(_now, data_dir), lambda redis: redis == [], within=5)


@pytest.mark.parametrize("moment", ["load", "shutdown"])
async def test_sigterm_under_load_or_while_stopping_ends_the_process_within_seconds(
    moment: str, tmp_path: Path
) -> None:
    chance = random.Random(f"{SEED}-{moment}")
    for round_ in range(ROUNDS):
        data_dir, log = tmp_path / f"data-{round_}", tmp_path / f"{round_}.log"
        async with as_run_py_starts_it(data_dir, log) as (process, url):
            await eventually(lambda: ready(url), within=30)
            load = asyncio.create_task(buying(url)) if moment == "load" else None
            if load is not None:
                await asyncio.sleep(chance.uniform(0.1, 1.0))  # the moment, not a wait
            process.send_signal(signal.SIGTERM)
            if moment == "shutdown":
                await asyncio.sleep(chance.uniform(0.0, 0.5))  # a second signal, mid-way
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            took = await stopped_within(process, log)
            if load is not None:
                load.cancel()
                await asyncio.gather(load, return_exceptions=True)
        assert took < STOP_WITHIN, f"round {round_}"
        await eventually(partial(_now, data_dir), lambda redis: redis == [], within=5)


async def test_a_killed_embedded_redis_is_started_again_and_the_process_is_ready_again(
    tmp_path: Path,
) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "run.log"
    async with as_run_py_starts_it(data_dir, log) as (process, url):
        await eventually(lambda: ready(url), within=30)
        (redis_pid,) = redis_of(data_dir)
        os.kill(redis_pid, signal.SIGKILL)
        await eventually(
            partial(_now, data_dir), lambda now: now not in ([], [redis_pid]), within=20
        )
        await eventually(lambda: ready(url), within=30)
        async with aiohttp.ClientSession() as http, http.get(f"{url}/health") as answer:
            assert (await answer.json())["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        await stopped_within(process, log)
    assert "the embedded Redis exited" in log.read_text()


async def _now(data_dir: Path) -> list[int]:
    return redis_of(data_dir)
