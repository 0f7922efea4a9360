"""`python run.py` processes started by a test: several of them make a cluster on one Redis
namespace, one data directory and one database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from sagashop.config import Settings
from tests.support import Shop, eventually

RUN_PY = Path(__file__).resolve().parents[1] / "run.py"


@dataclass
class Process:
    """`python run.py` running as a child of the test."""

    name: str
    child: asyncio.subprocess.Process
    log: Path
    shop: Shop
    killed: bool = False

    def log_text(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        """SIGKILL: no draining, no closing, as in a crash."""
        self.child.kill()
        self.killed = True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_py_argv(services: str, settings: Settings, port: int) -> list[str]:
    """The command line that starts a process with these settings."""
    flags = {
        "--port": port,
        "--services": services,
        "--redis-url": settings.redis_url,
        "--namespace": settings.namespace,
        "--data-dir": settings.data_dir,
        "--bus": settings.bus,
        "--payment-failure-rate": settings.payment_failure_rate,
        "--saga-deadline": settings.saga_deadline,
        "--nudge-after": settings.nudge_after,
        "--sweep-every": settings.sweep_every,
    }
    return [sys.executable, str(RUN_PY), *(str(x) for pair in flags.items() for x in pair)]


@asynccontextmanager
async def run_py(
    name: str, services: str, settings: Settings, logs: Path
) -> AsyncIterator[Process]:
    """`python run.py` as a child process; on the way out, Ctrl-C it and expect a clean exit."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("DATABASE_URL")}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        child = await asyncio.create_subprocess_exec(
            *run_py_argv(services, settings, port),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            env={**env, "PYTHONUNBUFFERED": "1"},
        )
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as session:
        process = Process(name, child, log, Shop(session))
        try:
            await eventually(lambda: _healthy(process), within=30)
            yield process
        finally:
            if not process.killed:
                child.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(child.wait(), 30)
        if not process.killed:
            assert code == 0, f"{name} exited with {code}:\n{process.log_text()[-3000:]}"


async def _healthy(process: Process) -> bool:
    if process.child.returncode is not None:
        raise AssertionError(f"{process.name} died:\n{process.log_text()[-3000:]}")
    try:
        status, _ = await process.shop.call("GET", "/health")
    except aiohttp.ClientConnectionError:
        return False
    return status == 200


@asynccontextmanager
async def cluster(
    layout: Sequence[tuple[str, str]], settings: Settings, logs: Path
) -> AsyncIterator[list[Process]]:
    """One `run.py` per (name, services), all sharing the settings' Redis namespace, data
    directory and database."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(run_py(name, services, settings, logs))
            for name, services in layout
        ]
