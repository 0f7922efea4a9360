"""System processes started by a test (`python -m sagashop`, what `run.py` runs): several of
them make a cluster on one Redis namespace, one data directory and one database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from sagashop.chaos.processes import Child
from sagashop.config import Settings
from tests.support import Shop


@dataclass
class Process:
    """One process of the cluster, and the test's client for its front door."""

    child: Child
    shop: Shop
    killed: bool = False

    @property
    def name(self) -> str:
        return self.child.name

    def log_text(self) -> str:
        return self.child.log_text()

    def kill(self) -> None:
        """SIGKILL: no draining, no closing, as in a crash."""
        self.child.kill()
        self.killed = True


@asynccontextmanager
async def run_process(
    name: str, services: str, settings: Settings, logs: Path
) -> AsyncIterator[Process]:
    """One process; on the way out, Ctrl-C it and expect a clean exit (unless it was killed)."""
    child = Child(name, services, settings, logs / f"{name}.log")
    async with aiohttp.ClientSession(base_url=child.url) as session:
        process = Process(child, Shop(session))
        try:
            await child.start()
            yield process
        finally:
            code = await child.stop() if child.process else None
    if not process.killed:
        assert code == 0, f"{name} exited with {code}:\n{process.log_text()[-3000:]}"


@asynccontextmanager
async def cluster(
    layout: Sequence[tuple[str, str]], settings: Settings, logs: Path
) -> AsyncIterator[list[Process]]:
    """One process per (name, services), all sharing the settings' Redis namespace, data
    directory and database."""
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(run_process(name, services, settings, logs))
            for name, services in layout
        ]
