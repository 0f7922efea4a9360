"""A RabbitMQ node of the chaos run's (or a test's) own, so that it can be restarted mid-run: the
machine's broker may be shared (with CI, with other runs) and must not be.

The node runs from the machine's RabbitMQ (`rabbitmq-server` and `rabbitmqctl` from Debian's
/usr/lib/rabbitmq/bin, whose namesakes on PATH are wrappers that run them as another user, else
from PATH) as this process's child, dying with it as the embedded Redis does. It has a name of
its own, free ports of 127.0.0.1 for AMQP and for Erlang distribution, no plugins, and keeps
everything (Mnesia, its quorum queues' logs, its log, its config, its Erlang cookie, generated
here) in a directory of its own; the machine's /etc/rabbitmq is not read. Guest may log in from
localhost, RabbitMQ's default.

A restart is `rabbitmqctl stop_app` then `start_app`: RabbitMQ itself stops in order (its
listener closed, every connection closed, every queue stopped) and starts again in the same
Erlang VM, on the same port and data, recovering the durable queues and the messages in them
from disk. Not the whole VM stopped and started again: on a busy 2-core machine the VM's exit
and boot took 14 of the 16 s the broker was away (a chaos run of 10,000 purchases), long enough
that the sagas' 20 s deadline could not hold. Not SIGKILL either: RabbitMQ 3.10 writes its
registry of quorum queue members out lazily (every few minutes), and a node killed before that
comes back with a recently declared queue whose messages are out of reach ("leader not known").
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import aio_pika
from aio_pika.exceptions import AMQPError

from sagashop.chaos.processes import free_port
from sagashop.embedded_redis import die_with_parent
from sagashop.errors import SagashopError

log = logging.getLogger(__name__)

TOOLS = ("rabbitmq-server", "rabbitmqctl")
DEBIAN_BIN = "/usr/lib/rabbitmq/bin"
"""Where Debian keeps RabbitMQ's own scripts; the ones on its PATH switch to the user rabbitmq."""
LINUX = sys.platform == "linux"
START_TIMEOUT = 90.0
"""Seconds a start may take: about 7 on a busy 2-core machine (an Erlang VM booting RabbitMQ)."""
STOP_TIMEOUT = 30.0
PROBE_TIMEOUT = 2.0
CONFIG = """\
# This node's own: not the machine's /etc/rabbitmq (whose listener is its broker's).
log.console = true
log.console.level = info
log.console.use_colors = off
log.file = false
"""
"""Its log on its standard output, which goes to the log file it is given."""


class NoRabbit(SagashopError):
    """RabbitMQ's programs are not installed."""


def rabbitmq_programs() -> dict[str, str]:
    """Where `TOOLS` are: the scripts that run as this process (its child, for the server)."""
    for place in (DEBIAN_BIN, None):
        found = {tool: shutil.which(tool, path=place) for tool in TOOLS}
        if all(found.values()):
            return {tool: str(path) for tool, path in found.items()}
    raise NoRabbit(
        f"RabbitMQ's programs ({', '.join(TOOLS)}) are neither in {DEBIAN_BIN} nor on PATH: "
        "install RabbitMQ"
    )


class OwnRabbit:
    """A RabbitMQ node, started, restarted (RabbitMQ stopped and started again; on the same
    port, its data kept) and stopped (its directory removed)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.node = f"sagashop-{secrets.token_hex(4)}@localhost"
        self._dist_port = free_port()
        self._programs = rabbitmq_programs()
        self._directory: Path | None = None
        self._server: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Make its directory on the first start; on every start, run the node."""
        if self._directory is None:
            self._make_directory()
        self._launch()
        log.info("started RabbitMQ %s at 127.0.0.1:%d", self.node, self.port)

    def restart(self) -> float:
        """Stop RabbitMQ and start it again (see the module's docstring). Returns the seconds
        it was away: from the stop until it accepts AMQP again."""
        stopped = time.monotonic()
        self._ctl("stop_app")
        self._ctl("start_app")
        self._wait_until_accepting()
        return time.monotonic() - stopped

    def stop(self) -> None:
        """Stop the node, then remove everything it kept."""
        self._stop()
        directory, self._directory = self._directory, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def _make_directory(self) -> None:
        """Its directory, with its config, no plugins and an Erlang cookie of its own (read from
        $HOME, which is this directory, by the node and by any `rabbitmqctl` pointed at it)."""
        directory = self._directory = Path(tempfile.mkdtemp(prefix="sagashop-rabbitmq-"))
        (directory / "rabbitmq.conf").write_text(CONFIG)
        (directory / "enabled_plugins").write_text("[].\n")
        cookie = directory / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)  # Erlang refuses a cookie others may read

    def _environment(self) -> dict[str, str]:
        assert self._directory is not None
        directory = str(self._directory)
        return {
            **os.environ,
            "HOME": directory,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "RABBITMQ_MNESIA_BASE": f"{directory}/mnesia",
            "RABBITMQ_LOG_BASE": f"{directory}/log",
            "RABBITMQ_CONFIG_FILE": f"{directory}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{directory}/advanced.config",
            "RABBITMQ_CONF_ENV_FILE": f"{directory}/rabbitmq-env.conf",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{directory}/enabled_plugins",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",  # an epmd the node starts listens on 127.0.0.1 only
            # The script then replaces itself with the Erlang VM (with no shell of its own)
            # rather than running it as a child: the node is this process's child, and dies
            # with it.
            "RUNNING_UNDER_SYSTEMD": "true",
        }

    def _launch(self) -> None:
        assert self._directory is not None
        with self.log_path.open("ab") as out:
            self._server = subprocess.Popen(
                [self._programs["rabbitmq-server"]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._directory,
                env=self._environment(),
                # the node has nothing to keep for a run that is gone
                preexec_fn=partial(die_with_parent, signal.SIGKILL) if LINUX else None,
            )
        self._wait_until_accepting()

    def _wait_until_accepting(self) -> None:
        """Until a client logs in over AMQP: the node listens only once it has booted."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._server is None or self._server.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited; its log ends:\n{self._log_tail()}")
            if self._accepts():
                return
            time.sleep(0.1)
        self._stop()
        raise RuntimeError(f"RabbitMQ did not accept AMQP within {START_TIMEOUT:g}s")

    def _accepts(self) -> bool:
        """Whether a client logs in over AMQP; tried once the port listens (aiormq logs an error
        for every connection refused)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=PROBE_TIMEOUT).close()
        except OSError:
            return False
        return asyncio.run(_logs_in(self.url))

    def _stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.terminate()
        try:
            server.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    def _ctl(self, command: str) -> None:
        """`rabbitmqctl` on this node (it finds the node's cookie in its $HOME, as the node
        does); its output goes to the log."""
        with self.log_path.open("ab") as out:
            done = subprocess.run(
                [self._programs["rabbitmqctl"], "-n", self.node, command],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._directory,
                env=self._environment(),
                timeout=START_TIMEOUT,
            )
        if done.returncode:
            raise RuntimeError(f"rabbitmqctl {command} exited with {done.returncode}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


async def _logs_in(url: str) -> bool:
    try:
        connection = await aio_pika.connect(url, timeout=PROBE_TIMEOUT)
    except (OSError, AMQPError, TimeoutError):
        return False
    await connection.close()
    return True
