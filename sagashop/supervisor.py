"""`python run.py --processes N`: the six services dealt over N processes that all answer on one
port.

One Python process is one core (the GIL), so a machine's other cores need other processes. This
parent starts N children (`python -m sagashop`, each with its share of the services and
`--reuse-port on`: the kernel deals the connections between them), passes Ctrl-C and SIGTERM on
to them and exits once they all have, with the worst exit status. Each service runs in exactly
one child, so each service's SQLite file is written by one process; a child asks another over
Redis for what it does not run, as any process does. A child that dies after it had been up a
while is started again; one that dies at once (a bad setting, a database ahead of the code)
stops them all.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import FrameType

from sagashop.config import Settings, child_environment, to_flags

log = logging.getLogger(__name__)

SETTLED_AFTER = 10.0
"""Seconds a child must have run for its death to be taken as a crash to restart it after."""
LOOK_EVERY = 0.2


def deal(services: Sequence[str], processes: int) -> list[tuple[str, ...]]:
    """The services in `processes` runs of neighbours in the saga's order (the order of
    `SERVICES`), so that as few of its hops as may be cross processes; more processes than
    services leave the last ones a front door only."""
    size, extra = divmod(len(services), processes)
    shares, start = [], 0
    for n in range(processes):
        end = start + size + (1 if n < extra else 0)
        shares.append(tuple(services[start:end]))
        start = end
    return shares


@dataclass
class _Child:
    services: tuple[str, ...]
    process: subprocess.Popen[bytes]
    started: float


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children: list[_Child] = []
        self.stopping = False

    def run(self) -> int:
        """Start the children and wait for them; the worst exit status."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._pass_on)
        shares = deal(self.settings.services, self.settings.processes)
        self.children = [self._start(share) for share in shares]
        log.info(
            "%d processes serve http://%s:%d: %s",
            len(self.children),
            self.settings.host,
            self.settings.port,
            "; ".join(",".join(child.services) or "no services" for child in self.children),
        )
        worst = 0
        while self.children:
            time.sleep(LOOK_EVERY)
            for child in [c for c in self.children if c.process.poll() is not None]:
                worst = max(worst, self._ended(child))
        return worst

    def _start(self, services: tuple[str, ...]) -> _Child:
        mine = replace(self.settings, services=services, processes=1, reuse_port=True)
        argv = [sys.executable, "-m", "sagashop", *to_flags(mine)]
        # A session of its own: Ctrl-C at a terminal reaches this parent only, which passes it
        # on once (a second SIGINT cut a child's own stop short).
        process = subprocess.Popen(
            argv, env=child_environment(mine, os.environ), start_new_session=True
        )
        return _Child(services, process, time.monotonic())

    def _ended(self, child: _Child) -> int:
        """A child exited: start it again if it crashed after settling in, else stop all."""
        self.children.remove(child)
        code = child.process.returncode
        if self.stopping:
            return code
        if time.monotonic() - child.started >= SETTLED_AFTER:
            log.error("the process of %s exited with %s; starting it again", child.services, code)
            self.children.append(self._start(child.services))
            return 0
        log.error("the process of %s exited with %s at once; stopping", child.services, code)
        self._pass_on(signal.SIGTERM, None)
        return code or 1

    def _pass_on(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for child in self.children:
            if child.process.poll() is None:
                child.process.send_signal(signum)


def supervise(settings: Settings) -> int:
    return Supervisor(settings).run()
