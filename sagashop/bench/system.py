"""The system a bench run starts when it is given no `--url`: a Redis (an embedded one unless
`--redis-url` is given) and N `python -m sagashop` processes dealing the six services between
them, each with a front door of its own.

The system runs in processes of its own, never in the bench's, so the load the bench makes as a
client counts neither in the system's CPU nor in its memory or event-loop lag.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from sagashop.actors import SERVICE_NAMES
from sagashop.chaos.processes import Child
from sagashop.config import Settings
from sagashop.embedded_redis import EmbeddedRedis

log = logging.getLogger(__name__)


def shares(processes: int) -> list[str]:
    """The services of each process, dealt round-robin ("none" for a front door only, when
    there are more processes than services)."""
    return [",".join(SERVICE_NAMES[n::processes]) or "none" for n in range(processes)]


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


@dataclass(frozen=True)
class System:
    children: list[Child]

    @property
    def urls(self) -> list[str]:
        return [child.url for child in self.children]

    def peaks(self) -> list[int | None]:
        """Each process's peak RSS so far, in the order of `urls`."""
        return [peak_rss(child.process.pid) if child.process else None for child in self.children]


@asynccontextmanager
async def started_system(
    settings: Settings, processes: int, workdir: Path
) -> AsyncIterator[System]:
    """The processes, started and answering `/health`, with a fresh namespace and data
    directory in `workdir` (their logs too); stopped on the way out (Ctrl-C, then waited for)."""
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
    children = [
        Child(f"bench-{n}", share, settings, workdir / f"bench-{n}.log")
        for n, share in enumerate(shares(processes), start=1)
    ]
    try:
        started = await asyncio.gather(
            *(child.start() for child in children), return_exceptions=True
        )
        for failure in started:
            if isinstance(failure, BaseException):
                raise failure
        yield System(children)
    finally:
        await asyncio.gather(*(_stop(child) for child in children if child.process))
        if redis is not None:
            await asyncio.to_thread(redis.stop)


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
