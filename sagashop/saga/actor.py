"""A service's actor: its mailbox, and the worker that takes its steps one message at a time.

pykka gives each service a thread and a mailbox; the thread hands every piece of store work to
the process's event loop (`LoopBridge`) and waits for it, retrying as `RetryPolicy` says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pykka

from sagashop.events import Event
from sagashop.requests import Request
from sagashop.saga.declare import Service
from sagashop.saga.loop import LoopBridge
from sagashop.saga.retry import RetryPolicy
from sagashop.saga.steplog import StepLog
from sagashop.store.errors import translated

T = TypeVar("T")


@dataclass(frozen=True)
class HandleEvents:
    """Take the steps these events call for, in order."""

    events: tuple[Event, ...]
    done: Callable[[], None] | None = None
    """Called once every event was handled (or given up on): a durable bus acknowledges then."""


@dataclass(frozen=True)
class Call:
    """Run one of the service's commands and answer `reply`."""

    name: Request
    args: Mapping[str, Any]
    reply: asyncio.Future[Any]


@dataclass(frozen=True)
class Drain:
    """Answered once everything queued before it has been handled."""

    reply: asyncio.Future[None]


class ServiceActor(pykka.ThreadingActor):
    """One service's mailbox and its worker, handling one message at a time."""

    def __init__(
        self,
        service: Service,
        step_log: StepLog,
        loop: LoopBridge,
        retry: RetryPolicy,
    ) -> None:
        super().__init__()
        self.service = service
        self.step_log = step_log
        self.loop = loop
        self.retry = retry
        self.log = logging.getLogger(f"sagashop.{service.name}")

    def on_receive(self, message: Any) -> None:
        try:
            self._receive(message)
        except Exception:
            # An actor that raises from a told message dies silently; this one logs and goes on.
            self.log.exception("unexpected error handling %r", message)

    def _receive(self, message: Any) -> None:
        match message:
            case HandleEvents(events, done):
                try:
                    for event in events:
                        self._take_step(event)
                finally:
                    if done is not None:
                        done()
            case Call(name, args, reply):
                command, what = self.service.commands[name], f"{self.service.name}.{name}"
                self.loop.settle(reply, lambda: self._retried(lambda: command(**args), what))
            case Drain(reply):
                self.loop.settle(reply, lambda: None)
            case _:
                self.log.warning("unknown message %r", message)

    def _take_step(self, event: Event) -> None:
        chosen = self.service.step_for(event.name)
        if chosen is None:
            return
        what = f"order {event.order_id}: {self.service.name}.{chosen.name} on {event.name}"
        try:
            self._retried(lambda: self.step_log.run(chosen, event), what)
        except Exception as error:
            self.log.exception("%s failed for good; it goes to the dead letters", what)
            self._on_loop(self.step_log.give_up(chosen, event, error))

    def _retried(self, work: Callable[[], Coroutine[Any, Any, T]], what: str) -> T:
        return self.retry.call(lambda: self._on_loop(work()), what)

    def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(translated(work))
