"""Signed bus messages: whoever can reach Redis cannot forge, alter or replay what services say.

Every event, request and reply travels as `v1.<key id>.<milliseconds>.<hmac>.<body>`: an
HMAC-SHA256, under the key named, over the namespace, the channel, the time and the body. The
namespace and channel are signed so a message cannot be moved to another system or another
event; the time so Pub/Sub can refuse an old message played again (inside the window the
delivery claims drop the copy). The first of the keys signs and all of them verify, so a key is
rotated without downtime: add the new one second everywhere, then first, then drop the old one.

The receiver checks the size and the signature (in constant time) before it parses any JSON,
so a forged message never reaches a parser or a service.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sagashop.errors import SagashopError
from sagashop.private import private_directory

log = logging.getLogger(__name__)

VERSION = "v1"
MAX_WIRE_BYTES = 64 * 1024
"""Larger messages are refused unread: no event or request of this system comes near."""
MAX_REPLY_BYTES = 64 * 1024 * 1024
"""A reply can be large (the audit's facts are whole tables, a user's orders a long list): it
travels in parts of at most `MAX_WIRE_BYTES` (`sagashop.transport.rpc`), up to this in all."""
MAX_SKEW = 60.0
"""Seconds a Pub/Sub message may be from now; the delivery claims live as long."""
KEY_FILE = "bus.key"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_KEY_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class Rejected(SagashopError):
    """A message from the bus that is not to be trusted; `reason` labels the count."""

    reason = "invalid"


class Oversized(Rejected):
    reason = "oversized"


class Unsigned(Rejected):
    reason = "unsigned"


class UnknownKey(Rejected):
    reason = "unknown_key"


class BadSignature(Rejected):
    reason = "bad_signature"


class Stale(Rejected):
    reason = "stale"


class SquattedClaim(Rejected):
    """A delivery claim held by a value no key of this system signed: someone with write access
    to Redis took it to keep the delivery from its service."""

    reason = "squatted_claim"


class NoBusKeys(SagashopError, ValueError):
    """A Redis reachable over TCP, and no keys to sign with: refuse to start."""


@dataclass(frozen=True)
class BusKeys:
    """Key id and secret pairs, the signing one first. The secrets never show in a repr."""

    keys: tuple[tuple[str, bytes], ...] = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> BusKeys:
        """`"k2:secret,k1:secret"`, as `BUS_KEYS` and `--bus-keys` take them."""
        pairs = [_key(part.strip()) for part in text.split(",") if part.strip()]
        if not pairs:
            raise ValueError("no key given; write id:secret[,id:secret…]")
        if len({kid for kid, _ in pairs}) != len(pairs):
            raise ValueError("a key id is listed twice")
        return cls(tuple(pairs))

    def text(self) -> str:
        """The form `parse` reads, for a child process's environment (never its command line)."""
        return ",".join(f"{kid}:{secret.decode()}" for kid, secret in self.keys)

    def __repr__(self) -> str:
        return f"BusKeys(ids={[kid for kid, _ in self.keys]})"

    __str__ = __repr__


def _key(part: str) -> tuple[str, bytes]:
    kid, _, secret = part.partition(":")
    if not kid or not set(kid) <= _KEY_ID_CHARS:
        raise ValueError("a key id is letters, digits, _ or - (id:secret)")
    if len(secret) < 16:
        raise ValueError(f"the secret of key {kid!r} is shorter than 16 characters")
    return kid, secret.encode()


class Signer:
    """Signs what this node puts on the bus and opens what it takes off, counting refusals."""

    def __init__(
        self,
        keys: BusKeys,
        namespace: str,
        on_reject: Callable[[str], None] = lambda _reason: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._signing_id, self._signing_key = keys.keys[0]
        self._keys = dict(keys.keys)
        self._namespace = namespace.encode()
        self._on_reject = on_reject
        self._clock = clock
        self.rejected: Counter[str] = Counter()
        """Refusals by reason, for `/health`."""

    def sign(self, channel: str, body: str) -> str:
        """The wire text of `body` on `channel`."""
        stamp = str(int(self._clock() * 1000))
        mac = self._mac(self._signing_key, channel, stamp, body.encode())
        return f"{VERSION}.{self._signing_id}.{stamp}.{mac}.{body}"

    def open(
        self,
        channel: str,
        wire: Any,
        max_age: float | None = None,
        max_bytes: int = MAX_WIRE_BYTES,
    ) -> str:
        """The body of a message signed for `channel`, else raise `Rejected`. `max_age`:
        refuse a time further than this from now (Pub/Sub; a stream entry may wait long).
        `max_bytes`: the size cap, checked first (a reply may carry a whole table)."""
        if not isinstance(wire, str | bytes) or len(wire) > max_bytes:
            raise Oversized(f"not text, or over {max_bytes} bytes")
        raw = wire if isinstance(wire, bytes) else wire.encode(errors="surrogateescape")
        if len(raw) > max_bytes:
            raise Oversized(f"over {max_bytes} bytes")
        parts = raw.split(b".", 4)
        if len(parts) != 5 or parts[0] != VERSION.encode():
            raise Unsigned("no signature")
        _, kid, stamp, mac, body = parts
        key = self._keys.get(kid.decode(errors="replace"))
        if key is None:
            raise UnknownKey("signed with a key this node does not know")
        expected = self._mac(key, channel, stamp.decode(errors="replace"), body)
        if not hmac.compare_digest(expected.encode(), mac):
            raise BadSignature("the signature does not match")
        self._check_time(stamp, max_age)
        return body.decode(errors="replace")

    def reject(self, where: str, error: BaseException, raw: Any) -> None:
        """Count and log one dropped message; `raw` is logged as a short repr, so no control
        character from the bus reaches the log as such."""
        reason = error.reason if isinstance(error, Rejected) else "invalid"
        self.rejected[reason] += 1
        self._on_reject(reason)
        log.warning(
            "bus: dropped a message on %r (%s: %r): %.120r",
            where,
            reason,
            str(error)[:200],
            raw,
        )

    def _check_time(self, stamp: bytes, max_age: float | None) -> None:
        if max_age is None:
            return
        if not stamp.isdigit() or abs(self._clock() - int(stamp) / 1000) > max_age:
            raise Stale(f"sent more than {max_age:g}s from now")

    def _mac(self, key: bytes, channel: str, stamp: str, body: bytes) -> str:
        signed = b"\n".join((self._namespace, channel.encode(), stamp.encode(), body))
        return hmac.new(key, signed, hashlib.sha256).hexdigest()


def keys_for(bus_url: str, given: BusKeys | None, data_dir: Path | None = None) -> BusKeys:
    """The keys given; else a private key file, created on first use and shared by every
    process on this machine that uses the same bus: beside the socket of a Redis on a unix
    socket (the embedded one), or in the data directory for a RabbitMQ on this machine
    (`AMQP_URL` to a loopback address). A bus over the network has none: raise `NoBusKeys`."""
    if given is not None:
        return given
    url = urlsplit(bus_url)
    if url.scheme == "unix":
        return BusKeys.parse(f"local:{_read_or_create(Path(url.path).parent / KEY_FILE)}")
    if url.scheme in ("amqp", "amqps") and url.hostname in LOOPBACK and data_dir is not None:
        return BusKeys.parse(f"local:{_read_or_create(private_directory(data_dir) / KEY_FILE)}")
    raise NoBusKeys(
        "the bus (REDIS_URL or AMQP_URL) is reached over the network, so bus messages must be "
        "signed: set BUS_KEYS (or --bus-keys) to id:secret[,id:secret…], the same on every "
        "process"
    )


def _read_or_create(path: Path) -> str:
    """The secret in `path`, written first (mode 0600, atomically) if there is none."""
    if not path.exists():
        draft = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(32))
        try:
            os.link(draft, path)  # fails if another process was first: theirs is used
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()
