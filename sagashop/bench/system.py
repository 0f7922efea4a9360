"""The system a bench run starts when it is given no `--url`: a Redis (an embedded one unless
`--redis-url` is given) and `python -m sagashop`, with `--processes N` as the bench was given
(the services dealt over N processes on the one port, as `run.py --processes N` runs them).

The system runs in processes of its own, never in the bench's, so the load the bench makes as a
client counts neither in the system's CPU nor in its memory or event-loop lag. Both are read
from Linux's /proc for every process of it: the server, the processes it started, and Redis.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp

from sagashop.actors import SERVICE_NAMES
from sagashop.chaos.processes import Child
from sagashop.config import Settings
from sagashop.embedded_redis import EmbeddedRedis
from sagashop.transport import Channels
from sagashop.transport.rabbitmq import forget_namespace

log = logging.getLogger(__name__)
TICKS = 100
"""Clock ticks per second in /proc's CPU times (Linux's USER_HZ)."""


def descendants(pid: int) -> list[int]:
    """The process and every process it started, and they started (from /proc)."""
    found, waiting = [], [pid]
    while waiting:
        current = waiting.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        waiting += [int(child) for child in children]
    return found


def peak_rss(pid: int) -> int | None:
    """The most memory the process has held (VmHWM, from Linux's /proc); None elsewhere."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU the process has used (from /proc); None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass(frozen=True)
class System:
    server: Child
    redis_url: str
    redis_pid: int | None
    """The embedded Redis the bench started, if it did."""

    @property
    def urls(self) -> list[str]:
        return [self.server.url]

    def pids(self) -> list[int]:
        return descendants(self.server.process.pid) if self.server.process else []

    def peaks(self) -> list[int | None]:
        """The peak RSS of every process of the server."""
        return [peak_rss(pid) for pid in self.pids()]

    def cpu(self) -> tuple[float, float | None]:
        """CPU seconds so far: the server's processes' summed, and the bench's Redis's."""
        servers = sum(seconds for pid in self.pids() if (seconds := cpu_seconds(pid)))
        return servers, None if self.redis_pid is None else cpu_seconds(self.redis_pid)


@asynccontextmanager
async def started_system(settings: Settings, workdir: Path) -> AsyncIterator[System]:
    """The server, started and answering `/health`, with a fresh namespace and data directory
    in `workdir` (its log too); stopped on the way out (Ctrl-C, then waited for), and on
    RabbitMQ its namespace's queues and exchanges deleted."""
    redis = None if settings.redis_url else EmbeddedRedis(workdir / "redis")
    if redis is not None:
        await asyncio.to_thread(redis.start)
    settings = replace(
        settings,
        redis_url=settings.redis_url if redis is None else redis.url,
        namespace=f"bench-{uuid.uuid4().hex[:8]}",
        data_dir=workdir / "data",
        rate_limit="off",  # its clients all come from this one address
    )
    server = Child("bench", "all", settings, workdir / "bench.log")
    try:
        await server.start()
        await _every_service_answers(server.url)
        assert settings.redis_url is not None
        yield System(server, settings.redis_url, None if redis is None else redis.pid)
    finally:
        if server.process:
            await _stop(server)
        if redis is not None:
            await asyncio.to_thread(redis.stop)
        if settings.bus == "rabbitmq" and settings.amqp_url is not None:
            await forget_namespace(settings.amqp_url, Channels(settings.namespace), SERVICE_NAMES)


async def _every_service_answers(url: str, within: float = 30.0) -> None:
    """Once `/summary` answers, which asks every service: with `--processes`, one process
    answering its port does not mean the others are up."""
    deadline = asyncio.get_running_loop().time() + within
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{url}/summary") as response:
                if response.status == 200 and not (await response.json())["unavailable"]:
                    return
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"not every service answers at {url} within {within:g}s")
            await asyncio.sleep(0.1)


async def _stop(child: Child) -> None:
    code: int | None
    try:
        code = await child.stop()
    except TimeoutError:
        child.kill()
        code = await child.process.wait() if child.process else None
    if code != 0:
        log.warning("%s exited with %s; its log ends:", child.name, code)
        for line in child.log_text()[-3000:].splitlines():  # a line each: the console escapes \n
            log.warning("  %s", line)
