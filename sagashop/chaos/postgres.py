"""A PostgreSQL server of the chaos run's own, so that it can be restarted mid-run: the machine's
PostgreSQL may be shared (with CI, with other runs) and must not be.

`initdb` makes a throwaway cluster in a directory of its own (trust authentication, listening on
127.0.0.1 only), and `postgres` runs as this process's child on a free port, dying with it as the
embedded Redis does. PostgreSQL refuses to run as root: as root, its programs run as the user
`postgres`, in a directory that user owns. A restart is an immediate stop, as after a crash, so
the server starts again by replaying its write-ahead log.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from sagashop.chaos.processes import free_port
from sagashop.embedded_redis import die_with_parent
from sagashop.errors import SagashopError

log = logging.getLogger(__name__)

TOOLS = ("initdb", "postgres", "pg_isready", "createdb")
SUPERUSER = "postgres"
RUN_AS = "postgres"
"""The system user PostgreSQL's programs run as when this process is root."""
DATABASE = "sagashop"
LINUX = sys.platform == "linux"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class NoPostgres(SagashopError):
    """PostgreSQL's server programs are not installed, or there is no user to run them as."""


def postgres_binaries() -> dict[str, str]:
    """Where `TOOLS` are: in `pg_config --bindir` (Debian keeps them off PATH), else on PATH."""
    for place in (_pg_config_bindir(), None):
        found = {tool: shutil.which(tool, path=place) for tool in TOOLS}
        if all(found.values()):
            return {tool: str(path) for tool, path in found.items()}
    raise NoPostgres(
        f"PostgreSQL's programs ({', '.join(TOOLS)}) are neither in pg_config's bindir nor on "
        "PATH: install PostgreSQL's server package"
    )


def _pg_config_bindir() -> str | None:
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    answer = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
    return answer.stdout.strip() or None


def run_as() -> dict[str, Any]:
    """The `subprocess` arguments that run a program as the user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam(RUN_AS)
    except KeyError:
        raise NoPostgres(f"running as root, and no user {RUN_AS!r} to run PostgreSQL as") from None
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


class OwnPostgres:
    """A PostgreSQL server with one empty database, started, restarted as after a crash (on the
    same port, its data kept) and stopped (its cluster removed)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.url = f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"
        self._binaries = postgres_binaries()
        self._as = run_as()
        self._directory: Path | None = None
        self._server: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Make the cluster and its database on the first start; on every start, serve it."""
        first = self._directory is None
        if first:
            self._make_cluster()
        self._launch()
        if first:
            self._tool("createdb", *self._address(), DATABASE)
        log.info("started PostgreSQL at %s", self.url)

    def restart(self) -> float:
        """Stop at once, as after a crash (SIGQUIT: what `pg_ctl stop -m immediate` sends), and
        start again on the same port; it recovers from its write-ahead log. Returns the seconds
        it was down: from the stop until it accepts connections again."""
        stopped = time.monotonic()
        self._stop(signal.SIGQUIT)
        self._launch()
        return time.monotonic() - stopped

    def stop(self) -> None:
        """A fast shutdown (SIGINT: sessions ended, no recovery needed), then the cluster gone."""
        self._stop(signal.SIGINT)
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def _make_cluster(self) -> None:
        """A directory of its own, not under the caller's (which may be private to root)."""
        self._directory = Path(tempfile.mkdtemp(prefix="sagashop-pg-"))
        if self._as:
            os.chown(self._directory, self._as["user"], self._as["group"])
        self._tool(
            "initdb",
            "-D",
            str(self._data()),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )

    def _launch(self) -> None:
        assert self._directory is not None
        argv = [self._binaries["postgres"], "-D", str(self._data()), "-p", str(self.port)]
        argv += ["-k", str(self._directory), "-c", "listen_addresses=127.0.0.1"]
        with self.log_path.open("ab") as out:
            self._server = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._directory,
                # an immediate stop if this process dies: no server outlives the run
                preexec_fn=partial(die_with_parent, signal.SIGQUIT) if LINUX else None,
                **self._as,
            )
        self._wait_until_accepting()

    def _wait_until_accepting(self) -> None:
        """Until `pg_isready` says so: a server replaying its log answers, but refuses sessions."""
        deadline = time.monotonic() + START_TIMEOUT
        ready = [self._binaries["pg_isready"], "-q", *self._address()]
        while time.monotonic() < deadline:
            if self._server is None or self._server.poll() is not None:
                raise RuntimeError(f"postgres exited; its log ends:\n{self._log_tail()}")
            if subprocess.run(ready, check=False).returncode == 0:
                return
            time.sleep(0.02)
        self._stop(signal.SIGQUIT)
        raise RuntimeError(f"PostgreSQL did not accept connections within {START_TIMEOUT:g}s")

    def _stop(self, how: signal.Signals) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.send_signal(how)
        try:
            server.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    def _tool(self, tool: str, *args: str) -> None:
        """One of PostgreSQL's programs, as its user; its output goes to the log."""
        with self.log_path.open("ab") as out:
            done = subprocess.run(
                [self._binaries[tool], *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._directory,
                **self._as,
            )
        if done.returncode:
            raise RuntimeError(f"{tool} exited with {done.returncode}:\n{self._log_tail()}")

    def _address(self) -> list[str]:
        """How a client program reaches the server: as the services do, over TCP."""
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER]

    def _data(self) -> Path:
        assert self._directory is not None
        return self._directory / "data"

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]
