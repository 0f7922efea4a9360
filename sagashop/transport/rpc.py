"""Request and reply over the process's link (`link`: Redis Pub/Sub, or RabbitMQ when it carries
the events): a request goes to the service's request channel, shared by the processes that run
the service, one of which takes it (on Redis by a claim, as an event), and the answer comes back
on the asking process's reply channel, matched by request id. Requests and
replies are signed like events (see `signing`), so a forged request or a spoofed reply is
dropped unread.

A long reply (the audit's facts are whole tables) goes in parts of `REPLY_PART` bytes, each
signed, put back together by the asker: no message on the bus is larger than `MAX_WIRE_BYTES`,
so Redis may refuse any larger one outright (`proto-max-bulk-len`, as the embedded Redis does)
and no reply, however long, fills a subscriber's output buffer to Redis' limit."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from sagashop.errors import (
    CallerError,
    SagashopError,
    Unavailable,
    answer_to,
    error_from_dict,
)
from sagashop.events import new_id
from sagashop.transport.channels import Channels
from sagashop.transport.link import LINK_AWAY, Link, Listening
from sagashop.transport.pubsub import Message
from sagashop.transport.signing import MAX_REPLY_BYTES, MAX_SKEW, MAX_WIRE_BYTES, Signer

log = logging.getLogger(__name__)

REPLY_PART = 32 * 1024
"""Bytes of a long reply per message (base64 in JSON: about 43 KiB on the wire)."""
MAX_PARTS = MAX_REPLY_BYTES // REPLY_PART

Serve = Callable[[str, str, dict[str, Any]], Awaitable[Any]]
"""Answers a request (service, request name, arguments) with a JSON-able value."""


class RequestReply:
    """One process's requests to services elsewhere, and its answers to theirs."""

    def __init__(
        self, link: Link, channels: Channels, node_id: str, signer: Signer, timeout: float = 10.0
    ) -> None:
        self._link = link
        self._signer = signer
        self._channels = channels
        self._reply_channel = channels.reply(node_id)
        self._timeout = timeout
        self._serving: dict[str, str] = {}  # request channel -> service
        self._serve: Serve | None = None
        self._listening: Listening | None = None
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._parts: dict[str, list[bytes | None]] = {}
        """The parts of long replies come so far, by request id (only for requests waiting)."""
        self._answering: set[asyncio.Task[None]] = set()

    async def start(self, services: Collection[str], serve: Serve) -> None:
        """Answer requests to `services` with `serve`, and take the replies to this process."""
        self._serve = serve
        self._serving = {self._channels.requests_to(service): service for service in services}
        channels = [self._reply_channel, *self._serving]
        self._listening = await self._link.listen(
            channels, self._arrived, "requests", shared=list(self._serving)
        )

    async def stop(self) -> None:
        """Stop listening; requests still waiting for an answer fail as unavailable."""
        if self._listening is not None:
            await self._listening.stop()
        await asyncio.gather(*self._answering, return_exceptions=True)
        for answer in self._waiting.values():
            if not answer.done():
                answer.set_exception(Unavailable("this process is shutting down"))

    async def ask(
        self, service: str, name: str, args: Mapping[str, Any], patience: float = 0.0
    ) -> Any:
        """Ask whichever process runs `service`, and wait for its answer (`patience` seconds
        longer than usual for a request that itself waits)."""
        request_id = new_id()
        answer = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        request = {"id": request_id, "reply_to": self._reply_channel, "name": name, "args": args}
        channel = self._channels.requests_to(service)
        try:
            wire = self._signer.sign(channel, json.dumps(request))
            if not await self._link.send(channel, [wire]):
                raise Unavailable(f"no process runs the {service} service")
            async with asyncio.timeout(self._timeout + patience):
                return await answer
        except TimeoutError:
            raise Unavailable(
                f"the {service} service did not answer within {self._timeout + patience:g}s"
            ) from None
        except LINK_AWAY as error:
            raise Unavailable(
                f"the message bus is unreachable ({type(error).__name__}); try again shortly"
            ) from None
        finally:
            self._waiting.pop(request_id, None)
            self._parts.pop(request_id, None)

    async def _arrived(self, messages: list[Message]) -> None:
        asked: list[tuple[str, str, dict[str, Any]]] = []  # (claim key, service, request)
        for channel, data in messages:
            try:
                body = json.loads(self._signer.open(channel, data, MAX_SKEW, MAX_WIRE_BYTES))
                if channel == self._reply_channel:
                    self._resolve(body)
                elif channel in self._serving:
                    service = self._serving[channel]
                    request = _checked_request(body)
                    asked.append((self._channels.claim(service, request["id"]), service, request))
            except Exception as error:  # whatever a stranger sent costs that message only
                self._signer.reject(channel, error, data)
        if asked:
            won = await self._link.claim([key for key, _, _ in asked])
            for (_, service, request), ok in zip(asked, won, strict=True):
                if ok:
                    self._start_answering(service, request)

    def _start_answering(self, service: str, request: dict[str, Any]) -> None:
        task = asyncio.create_task(self._answer(service, request))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, service: str, request: dict[str, Any]) -> None:
        assert self._serve is not None
        try:
            reply = {"value": await self._serve(service, request["name"], request["args"])}
        except SagashopError as error:  # the same answer as a caller in this process gets
            answer = answer_to(error, log, f"requests: {service}.{request.get('name')!r}")
            reply = {"error": answer.to_dict()}
        except Exception:
            log.exception("requests: %s.%r failed", service, request.get("name"))
            reply = {"error": CallerError(f"the {service} service failed").to_dict()}
        to = request["reply_to"]
        messages = _in_parts(request["id"], json.dumps({"id": request["id"], **reply}))
        try:
            await self._link.send(to, [self._signer.sign(to, message) for message in messages])
        except LINK_AWAY as error:
            log.warning(
                "requests: could not answer %s.%r (%s)", service, request.get("name"), error
            )

    def _resolve(self, reply: Any) -> None:
        if not isinstance(reply, dict) or not isinstance(reply.get("id"), str):
            raise ValueError("a reply is an object with an id")
        answer = self._waiting.get(reply["id"])
        if answer is None or answer.done():
            return
        if "part" in reply:
            whole = self._put_together(reply)
            if whole is None:
                return
            reply = whole
        if "error" in reply:
            answer.set_exception(error_from_dict(reply["error"]))
        else:
            answer.set_result(reply["value"])

    def _put_together(self, part: dict[str, Any]) -> Any:
        """The whole reply once its last part came (None until then)."""
        number, count, text = part.get("part"), part.get("of"), part.get("data")
        if not (
            isinstance(count, int)
            and 1 < count <= MAX_PARTS
            and isinstance(number, int)
            and 0 <= number < count
            and isinstance(text, str)
        ):
            raise ValueError("a part of a reply is numbered, counted and carries text")
        parts = self._parts.setdefault(part["id"], [None] * count)
        if len(parts) != count:
            raise ValueError("the parts of a reply disagree on their count")
        parts[number] = base64.b64decode(text, validate=True)
        if any(piece is None for piece in parts):
            return None
        del self._parts[part["id"]]
        return json.loads(b"".join(piece for piece in parts if piece is not None))


def _in_parts(request_id: str, body: str) -> list[str]:
    """The reply as one message, or as parts of `REPLY_PART` bytes when longer."""
    raw = body.encode()
    if len(raw) <= REPLY_PART:
        return [body]
    pieces = [raw[start : start + REPLY_PART] for start in range(0, len(raw), REPLY_PART)]
    if len(pieces) > MAX_PARTS:
        raise ValueError(f"a reply of {len(raw)} bytes is over {MAX_REPLY_BYTES}")
    return [
        json.dumps(
            {
                "id": request_id,
                "part": n,
                "of": len(pieces),
                "data": base64.b64encode(piece).decode(),
            }
        )
        for n, piece in enumerate(pieces)
    ]


def _checked_request(body: Any) -> dict[str, Any]:
    """A request's shape, checked before anything acts on it."""
    if not isinstance(body, dict):
        raise ValueError("a request is a JSON object")
    for key, kind in (("id", str), ("reply_to", str), ("name", str), ("args", dict)):
        if not isinstance(body.get(key), kind):
            raise ValueError(f"a request's {key!r} is a {kind.__name__}")
    return body
