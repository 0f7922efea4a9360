"""A TCP proxy in the chaos run's (or a test's) own process, to make a link bad on purpose:
`delay` holds each chunk back up to that many seconds, `drop_one` closes one live connection
at random, `cut` drops every connection and refuses new ones (a host gone, a partition) until
`restore`. Upstream is a TCP address, or a unix socket (the embedded Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

CHUNK = 65536


class Proxy:
    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        unix_path: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._host, self._port, self._unix_path = host, port, unix_path
        self._rng = rng or random.Random(0)
        self.port = 0
        self.delay = 0.0
        """Seconds a chunk may be held back, at most (each waits a random share of it)."""
        self.dropped = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()

    async def restore(self) -> None:
        """Listen (on the same port as before, once there was one)."""
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening and drop every connection, as a host that went away."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            self.cuts += 1
        await self._drop(list(self._links))

    async def drop_one(self) -> None:
        """Close one live connection, chosen at random (its client reconnects)."""
        if self._links:
            await self._drop([self._rng.choice(sorted(self._links, key=id))])
            self.dropped += 1

    async def _drop(self, links: list[asyncio.Task[None]]) -> None:
        for link in links:
            link.cancel()
        await asyncio.gather(*links, return_exceptions=True)

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._unix_path is not None:
            return await asyncio.open_unix_connection(self._unix_path)
        return await asyncio.open_connection(self._host, self._port)

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection, carried until either end closes or the proxy drops it; a dropped one
        ends as if closed (asyncio logs a connection handler that ends cancelled as an error)."""
        with contextlib.suppress(asyncio.CancelledError):
            await self._carry(reader, writer)

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            upstream_reader, upstream_writer = await self._upstream()
        except OSError:
            writer.close()
            self._links.discard(task)
            return
        try:
            await asyncio.gather(
                self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
            )
        finally:
            for end in (writer, upstream_writer):
                end.close()
            self._links.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(CHUNK):
                if self.delay:
                    await asyncio.sleep(self._rng.uniform(0, self.delay))
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()


@asynccontextmanager
async def proxy_to(host: str, port: int) -> AsyncIterator[Proxy]:
    """A proxy to a TCP address, listening until the block ends."""
    proxy = Proxy(host, port)
    await proxy.restore()
    try:
        yield proxy
    finally:
        await proxy.cut()
