"""The HTTP server under the app, as `run.py` serves it: aiohttp's, but for what its parser
refuses before any handler runs (a `\\xff` in the path, a header with a line break, too many
headers, a line over 8 KB). aiohttp answers those in plain text, naming itself and its Python in
`Server`, echoing the request line, and logs a traceback each time (about 480 MB of log an hour
from one client). Here they get the API's JSON error body and security headers, and one log line
each, at most `BURST` every `WINDOW` seconds, then a count of those not logged.

`serve` is aiohttp's `web.run_app` with this server: the same start, signals and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_runner import GracefulExit

from sagashop.http.errors import error_response
from sagashop.http.headers import stamp

log = logging.getLogger("sagashop.http")

BURST = 10
WINDOW = 10.0


class Refusals:
    """The logger aiohttp's request handler is given: a request its parser refused is one line
    at WARNING, no traceback, at most `burst` each `window` seconds, then how many were not
    logged; anything else (a bug under the app) goes to the log as it came, traceback and all."""

    def __init__(
        self,
        burst: int = BURST,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._burst = burst
        self._window = window
        self._clock = clock
        self._window_started = -window
        self._logged = 0
        self._unlogged = 0

    def exception(self, message: str, *args: Any, exc_info: Any = None, **kwargs: Any) -> None:
        if not isinstance(exc_info, HttpProcessingError):
            log.error(message, *args, exc_info=exc_info or True, **kwargs)
            return
        now = self._clock()
        if now - self._window_started >= self._window:
            if self._unlogged:
                log.warning("%d more unreadable requests were not logged", self._unlogged)
            self._window_started, self._logged, self._unlogged = now, 0, 0
        if self._logged >= self._burst:
            self._unlogged += 1
            return
        self._logged += 1
        remote = args[0] if args else "?"
        log.warning("an unreadable request from %s: %s", remote, _kind(exc_info))

    def __getattr__(self, name: str) -> Any:
        return getattr(log, name)


def _kind(error: HttpProcessingError) -> str:
    """What was wrong, by its kind only: the parser's own message quotes the request."""
    return type(error).__name__


class Handler(RequestHandler):
    """aiohttp's handler of one connection, answering what the parser refused as the API does."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        plain = super().handle_error(request, status, exc, message)
        if not isinstance(exc, HttpProcessingError):
            return plain
        said = f"the request could not be read ({_kind(exc)})"
        answer = error_response(status, {"code": "invalid_request", "message": said})
        stamp(answer.headers, path="")
        answer.force_close()
        return answer


class Server(web.Server):
    def __call__(self) -> RequestHandler:
        return Handler(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = Server  # the same server, making this module's handlers
        return server


async def _run(app: web.Application, host: str, port: int, reuse_port: bool | None) -> None:
    runner = Runner(app, handle_signals=True, access_log=None, logger=Refusals())
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=reuse_port).start()
        log.info("serving on %s", ", ".join(sorted(str(site.name) for site in runner.sites)))
        await asyncio.Event().wait()  # until a signal ends the loop's task
    finally:
        await runner.cleanup()


def serve(
    app: web.Application,
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    reuse_port: bool | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM, then stop the app (its cleanup drains the node)."""
    main = loop.create_task(_run(app, host, port, reuse_port))
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    except (GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        _cancel_all(loop)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    if left:
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
