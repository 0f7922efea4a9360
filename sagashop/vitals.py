"""How the process is doing: how long its event loop was kept from running, and its memory."""

from __future__ import annotations

import asyncio
import os
import resource
import sys
from pathlib import Path


class LoopLag:
    """How late the loop wakes a sleeper, at worst: what every other piece of ready work made it
    wait (one long callback, or many short ones queued ahead of it under load)."""

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self.latest = 0.0
        self.longest = 0.0

    async def watch(self) -> None:
        """Measure until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.every)
            self.latest = loop.time() - started - self.every
            self.longest = max(self.longest, self.latest)


def memory() -> dict[str, int | None]:
    """Resident memory now (None where /proc is missing) and at its peak, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rssBytes": _resident_now(),
        "peakRssBytes": peak if sys.platform == "darwin" else peak * 1024,
    }


def _resident_now() -> int | None:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except OSError:
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
