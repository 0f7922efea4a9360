"""What aiohttp's parser refuses before any handler runs is answered and logged as the rest of
the API: the JSON error body, the security headers and `Server: sagashop`, nothing of the
request echoed; one log line each, no traceback, and past a burst only a count, so a client
sending garbage cannot fill the disk. `python -m sagashop` as `run.py` serves it, over raw
sockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sagashop.config import Settings
from sagashop.http.server import BURST
from tests.cluster.processes import run_process
from tests.support import with_cluster_on

UNREADABLE = {
    "a byte that is not UTF-8 in the path": b"GET /items\xff HTTP/1.1\r\nHost: {host}\r\n\r\n",
    "a header with a line break in it": b"GET /items HTTP/1.1\r\nHost: {host}\r\nX-A: b\rc\r\n\r\n",
    "too many headers": b"GET /items HTTP/1.1\r\nHost: {host}\r\n"
    + b"".join(b"X-%d: v\r\n" % n for n in range(200))
    + b"\r\n",
    "a line of 9 KB": b"GET /items?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: {host}\r\n\r\n",
}


async def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw.replace(b"{host}", f"127.0.0.1:{port}".encode()))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


@with_cluster_on("sqlite-pubsub")
async def test_what_the_parser_refuses_is_answered_and_logged_as_the_api_does(
    cluster_settings: Settings, tmp_path: Path
) -> None:
    async with run_process("shop", "all", cluster_settings, tmp_path) as shop:
        port = shop.child.port
        for what, raw in UNREADABLE.items():
            status, headers, body = await _exchange(port, raw)
            assert status == 400, what
            assert headers["Server"] == "sagashop", what
            assert headers["X-Content-Type-Options"] == "nosniff", what
            assert headers["Content-Type"].startswith("application/json"), what
            error = json.loads(body)["error"]
            assert error["code"] == "invalid_request", what
            assert b"aaaa" not in body, f"{what}: the request echoed"
            assert b"X-1" not in body, f"{what}: the request echoed"
        for _ in range(100):
            await _exchange(port, UNREADABLE["a byte that is not UTF-8 in the path"])
    logged = shop.log_text()
    assert "Traceback" not in logged
    # 104 refused; a burst a window (a slow machine may open a second window meanwhile)
    assert BURST <= logged.count("an unreadable request") <= 2 * BURST
