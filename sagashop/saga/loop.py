"""The bridge between the actors' threads and the process's one event loop.

The actor's thread never touches a socket: it hands each piece of work to the loop and waits for
it, and the loop never waits on a thread; replies travel back with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopBridge:
    """The process's event loop, as the actors' threads see it."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, context: Callable[[], contextvars.Context]
    ) -> None:
        self._loop = loop
        self._context = context

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the loop and wait for it, blocking the calling thread, never the loop."""
        submit = asyncio.run_coroutine_threadsafe
        return self._context().run(submit, work, self._loop).result()

    def post(self, then: Callable[[], None]) -> None:
        """Have the loop run `then` soon; call from any thread (it does not wait)."""
        self._loop.call_soon_threadsafe(then)

    def later(self, delay: float, then: Callable[[], None]) -> None:
        """Have the loop run `then` in `delay` seconds; call from any thread."""
        self._loop.call_soon_threadsafe(self._loop.call_later, delay, then)

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start `work` as a task of its own; call from the loop's thread."""
        return self._loop.create_task(work, context=self._context())

    def settle(self, future: asyncio.Future[T], outcome: Callable[[], T]) -> None:
        """Resolve a loop future from a thread with what `outcome` returns or raises."""
        try:
            value = outcome()
        except Exception as error:
            self._loop.call_soon_threadsafe(_fail, future, error)
        else:
            self._loop.call_soon_threadsafe(_succeed, future, value)


def _succeed(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
