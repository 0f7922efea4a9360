"""System processes started by another program (the chaos run, the tests): each is
`python -m sagashop` running some of the services, with the same settings otherwise."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiohttp

from sagashop.config import Settings, child_environment, parse_services, to_flags

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Child:
    """One process: started, killed (SIGKILL, as in a crash), started again, stopped (Ctrl-C)."""

    name: str
    services: str
    settings: Settings
    log_path: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    module: str = "sagashop"
    """What it runs (`python -m MODULE`), given the settings as flags."""
    environment: dict[str, str] = field(default_factory=dict)
    """Variables of its own, beside those every process of the system gets."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        mine = replace(self.settings, services=parse_services(self.services), port=self.port)
        return [sys.executable, "-m", self.module, *to_flags(mine)]

    async def start(self) -> None:
        env = child_environment(self.settings, os.environ) | {"PYTHONUNBUFFERED": "1"}
        env |= self.environment
        with self.log_path.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv(), stdout=out, stderr=asyncio.subprocess.STDOUT, env=env
            )
        await self._wait_until_healthy()

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    async def stop(self) -> int:
        """Ctrl-C, and the exit code once the process has drained."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return await asyncio.wait_for(asyncio.shield(self.process.wait()), STOP_TIMEOUT)
        except TimeoutError:
            self.process.send_signal(signal.SIGUSR1)  # its threads' stacks, into its log
            await asyncio.sleep(1.0)
            raise TimeoutError(
                f"{self.name} did not stop within {STOP_TIMEOUT:g}s of Ctrl-C; its log ends:\n"
                f"{self.log_text()[-6000:]}"
            ) from None

    async def restart(self) -> None:
        assert self.process is not None
        await self.process.wait()
        await self.start()

    def log_text(self) -> str:
        return self.log_path.read_text()

    async def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.log_text()[-3000:]}")
                try:
                    async with session.get(f"{self.url}/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start within {START_TIMEOUT:g}s")
