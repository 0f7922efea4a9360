"""A service's actor: its mailbox, and the worker that takes its steps in batches.

pykka gives each service a thread and a mailbox; the thread hands every piece of store work to
the process's event loop (`LoopBridge`) and waits for it, retrying as `RetryPolicy` says. Events
waiting in the mailbox together are taken together: one trip to the loop, one transaction.

Settling steps (`Step.settling`: after the outcome, nobody waits for them) are held back up to
`SETTLE_WITHIN` seconds, or until the next batch that cannot wait, whose transaction they join:
at a few hundred purchases a second, most batches would otherwise hold one event each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import pykka

from sagashop.events import Event
from sagashop.metrics import StepMetrics
from sagashop.names import Request
from sagashop.saga.declare import Service, Step
from sagashop.saga.loop import LoopBridge
from sagashop.saga.retry import RetryPolicy
from sagashop.saga.steplog import StepLog
from sagashop.store.errors import translated

T = TypeVar("T")

MAX_BATCH = 256
"""Events taken in one transaction at most: enough to amortise it, few enough that a batch
that must be taken again one at a time (see `StepLog.run_all`) costs little."""
SETTLE_WITHIN = 0.05
"""Seconds a settling step may be held back for company: small beside the sweep's first nudge
(seconds), long enough to gather the settling steps of tens of purchases."""


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
class TakeHeld:
    """Take the settling steps held back (told `SETTLE_WITHIN` after the first was held)."""


@dataclass(frozen=True)
class Drain:
    """Answered once everything queued before it has been handled."""

    reply: asyncio.Future[None]


@dataclass(frozen=True)
class Pause:
    """Take what is held back, say so on `parked`, then take nothing more until `resume` is set,
    or `within` seconds have passed: a pause nobody ends must not stop the service for good."""

    parked: asyncio.Future[None]
    resume: threading.Event
    within: float


class Mailbox(queue.Queue[Any]):
    """pykka's inbox (a queue of envelopes), which also hands out the events waiting at its
    head, so that they are handled as one batch, and keeps the settling ones held back."""

    def __init__(self) -> None:
        super().__init__()
        self._held: list[HandleEvents] = []

    def hold(self, batch: list[HandleEvents]) -> bool:
        """Keep these aside until `release`; True if nothing was held before them."""
        with self.mutex:
            first = not self._held
            self._held += batch
            return first

    def release(self) -> list[HandleEvents]:
        """What was held, oldest first; nothing is held after."""
        with self.mutex:
            held, self._held = self._held, []
            return held

    def holding(self) -> int:
        """Events held back."""
        with self.mutex:
            return self._held_events()

    def _held_events(self) -> int:
        return sum(len(message.events) for message in self._held)

    def take_events(self, most: int) -> list[HandleEvents]:
        """`HandleEvents` messages from the head of the queue, up to `most` events in all;
        stops at anything else, which keeps its place in line."""
        taken: list[HandleEvents] = []
        with self.mutex:
            while self.queue and isinstance(self.queue[0].message, HandleEvents):
                waiting = self.queue[0].message
                if len(waiting.events) > most:
                    break
                most -= len(waiting.events)
                taken.append(self.queue.popleft().message)
        return taken

    def take_calls(self, name: Request, most: int) -> list[Call]:
        """`Call`s of one request from the head of the queue, `most` at most."""
        taken: list[Call] = []
        with self.mutex:
            while len(taken) < most and self.queue and _is_call(self.queue[0].message, name):
                taken.append(self.queue.popleft().message)
        return taken

    def depth(self) -> int:
        """Events waiting, held back ones included (any other message counts as one), for the
        metrics when scraped."""
        with self.mutex:
            return (
                sum(
                    len(e.message.events) if isinstance(e.message, HandleEvents) else 1
                    for e in self.queue
                )
                + self._held_events()
            )


def _is_call(message: Any, name: Request) -> bool:
    return isinstance(message, Call) and message.name == name


def _remind(actor: pykka.ActorRef[Any]) -> None:
    """Tell the actor to take what it holds back (on the loop, when the time is up)."""
    with contextlib.suppress(pykka.ActorDeadError):  # stopped, taking what it held (`on_stop`)
        actor.tell(TakeHeld())


def _given(answer: Any) -> Any:
    """An answer of a batched command: a value, or an exception to raise for that call."""
    if isinstance(answer, BaseException):
        raise answer
    return answer


class ServiceActor(pykka.ThreadingActor):
    """One service's mailbox and its worker, handling one message (or batch of events) at a
    time."""

    use_daemon_thread = True
    """The node stops its actors, draining them, on every way out it knows; a way out it does
    not know must still end the process, not wait for a thread nobody will stop."""

    def __init__(
        self,
        service: Service,
        step_log: StepLog,
        loop: LoopBridge,
        retry: RetryPolicy,
        metrics: StepMetrics,
    ) -> None:
        super().__init__()
        self.service = service
        self.step_log = step_log
        self.loop = loop
        self.retry = retry
        self.answering = retry.for_callers()
        self.metrics = metrics
        self.log = logging.getLogger(f"sagashop.{service.name}")

    @staticmethod
    def _create_actor_inbox() -> Mailbox:
        return Mailbox()

    def on_receive(self, message: Any) -> None:
        try:
            self._receive(message)
        except Exception:
            # An actor that raises from a told message dies silently; this one logs and goes on.
            self.log.exception("unexpected error handling %r", message)

    def _receive(self, message: Any) -> None:
        match message:
            case HandleEvents():
                room = MAX_BATCH - self._mailbox.holding() - len(message.events)
                batch = [message, *self._mailbox.take_events(room)]
                if room > 0 and self._can_wait(batch):
                    self._hold(batch)
                else:
                    self._take_batch([*self._mailbox.release(), *batch])
            case TakeHeld():
                self._take_batch(self._mailbox.release())
            case Call(name, _args, _reply) if name in self.service.batched:
                self._answer_together([message, *self._mailbox.take_calls(name, MAX_BATCH - 1)])
            case Call(name, args, reply):
                command, what = self.service.commands[name], f"{self.service.name}.{name}"
                self.loop.settle(reply, lambda: self._retried(lambda: command(**args), what))
            case Drain(reply):
                self._take_batch(self._mailbox.release())
                self.loop.settle(reply, lambda: None)
            case Pause(parked, resume, within):
                self._take_batch(self._mailbox.release())
                self.loop.settle(parked, lambda: None)
                if not resume.wait(within):
                    self.log.warning("paused %.0fs and not resumed: taking steps again", within)
            case _:
                self.log.warning("unknown message %r", message)

    def _can_wait(self, batch: list[HandleEvents]) -> bool:
        """Whether every event of the batch is for a settling step."""
        return all(
            (chosen := self.service.step_for(event.name)) is not None and chosen.settling
            for taken in batch
            for event in taken.events
        )

    def _hold(self, batch: list[HandleEvents]) -> None:
        """Hold the batch back; the first one held starts the clock for all."""
        if self._mailbox.hold(batch):
            self.loop.later(SETTLE_WITHIN, partial(_remind, self.actor_ref))

    def _take_batch(self, batch: list[HandleEvents]) -> None:
        """Take the batch's steps; then tell each message's sender it was taken."""
        try:
            self._take_steps([event for taken in batch for event in taken.events])
        finally:
            for taken in batch:
                if taken.done is not None:
                    taken.done()

    def _answer_together(self, calls: list[Call]) -> None:
        """One run of the batched command for all the calls; each answered with its own
        answer (or error), or all with what made the whole run fail."""
        name = calls[0].name
        command, what = self.service.batched[name], f"{self.service.name}.{name} x{len(calls)}"
        try:
            answers = self._retried(lambda: command([call.args for call in calls]), what)
        except Exception as error:
            answers = [error] * len(calls)
        for call, answer in zip(calls, answers, strict=True):
            self.loop.settle(call.reply, partial(_given, answer))

    @property
    def _mailbox(self) -> Mailbox:
        inbox = self.actor_inbox
        assert isinstance(inbox, Mailbox)
        return inbox

    def _take_steps(self, events: list[Event]) -> None:
        """All in one transaction; if that fails, one at a time, each retried on its own."""
        steps = [(chosen, e) for e in events if (chosen := self.service.step_for(e.name))]
        if len(steps) > 1:
            started = time.perf_counter()
            try:
                self._run_all(steps)
                self.metrics.took([chosen for chosen, _ in steps], time.perf_counter() - started)
                return
            except Exception as error:
                self.log.info(
                    "a batch of %d steps failed (%s: %s); taking them one at a time",
                    len(steps),
                    type(error).__name__,
                    error,
                )
        for chosen, event in steps:
            self._take_step(chosen, event)

    def _take_step(self, chosen: Step, event: Event) -> None:
        what = f"order {event.order_id}: {self.service.name}.{chosen.name} on {event.name}"
        started = time.perf_counter()
        try:
            self.retry.call(lambda: self._run_all([(chosen, event)]), what)
        except Exception as error:
            self.log.exception("%s failed for good; it goes to the dead letters", what)
            self._on_loop(self.step_log.give_up(chosen, event, error))
            self.metrics.gave_up()
        else:
            self.metrics.took([chosen], time.perf_counter() - started)

    def _run_all(self, steps: list[tuple[Step, Event]]) -> None:
        """One transaction for the steps: on this thread where the service's database allows
        it (a SQLite file), with no hand-off; else on the loop, waiting for it."""
        if self.step_log.database.here:
            self.step_log.run_all_here(steps, self.loop.post)
        else:
            self._on_loop(self.step_log.run_all(steps))

    def on_stop(self) -> None:
        self._take_batch(self._mailbox.release())
        self.step_log.database.close_here()

    def _retried(self, work: Callable[[], Coroutine[Any, Any, T]], what: str) -> T:
        """A command's run, retried as long as its caller is willing to wait."""
        return self.answering.call(lambda: self._on_loop(work()), what)

    def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(translated(work))
