"""Credentials in settings: shown without their password, and refused with a clear message.

A `REDIS_URL` or `DATABASE_URL` may carry `user:password@`. Whatever prints or logs one goes
through `redact` (the log formatters do it to every line, so a traceback that quotes a URL is
covered too), and a Redis that refuses the credentials, or cannot be reached, stops the start-up
with `RedisRefused`: one line naming the URL without its password and what Redis said.

Redis is a trust boundary: over TCP, a Redis that answers a client without a password lets
anyone who reaches it read every order, publish, and take delivery claims. Such a Redis stops
the start-up too, unless `--redis-insecure on` says to use it anyway (with a warning in capitals).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

from redis import exceptions
from redis.asyncio import Redis

from sagashop.errors import SagashopError

log = logging.getLogger(__name__)

_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):[^/?#\s]*@")
"""`scheme://user:password@`. The password runs to the last `@` before the host, as in
`urllib.parse`, so an unencoded `@` in it is hidden too."""


class RedisRefused(SagashopError):
    """Redis cannot be used with the URL given: refused credentials, a missing permission, or
    no answer. The message never holds the password."""


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    if "@" not in text:  # most log lines: no regular expression to run
        return text
    return _USERINFO.sub(r"\g<head>:***@", text)


async def check_redis(redis: Redis, url: str, insecure: bool = False) -> None:
    """Ping Redis once, so bad credentials stop the start-up with one clear line instead of a
    traceback from deep inside the client (which would not say which setting is wrong); then,
    over TCP, make sure a stranger without a password is refused (see the module)."""
    await _ping(redis, url)
    if not await _answers_anyone(url):
        return
    if not insecure:
        raise RedisRefused(
            redact(
                f"Redis at {url} answers clients without a password: anyone who reaches it "
                "could read every order, publish and take delivery claims. Give it a user "
                '(README, "Redis credentials") and put it in REDIS_URL, or start with '
                "--redis-insecure on"
            )
        )
    log.warning(
        "REDIS AT %s ANSWERS CLIENTS WITHOUT A PASSWORD (--redis-insecure on): ANYONE WHO "
        "REACHES IT CAN READ EVERY ORDER, PUBLISH AND TAKE DELIVERY CLAIMS",
        redact(url),
    )


async def _answers_anyone(url: str) -> bool:
    """Whether a Redis over TCP answers a client that gives no user and no password."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or parts.hostname is None:
        return False
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    anonymous = parts._replace(netloc=f"{host}:{parts.port or 6379}").geturl()
    stranger = Redis.from_url(anonymous, socket_timeout=5, socket_connect_timeout=5)
    try:
        return bool(await stranger.ping())
    except (exceptions.AuthenticationError, exceptions.ResponseError, exceptions.NoPermissionError):
        return False
    finally:
        await stranger.aclose()


async def _ping(redis: Redis, url: str) -> None:
    try:
        await redis.ping()
    except exceptions.AuthenticationError as error:
        raise RedisRefused(
            _said(url, "refused the user and password of REDIS_URL", error)
        ) from None
    except exceptions.NoPermissionError as error:
        raise RedisRefused(
            _said(url, "does not let the user of REDIS_URL run PING", error)
        ) from None
    except (exceptions.ConnectionError, exceptions.TimeoutError, OSError) as error:
        raise RedisRefused(_said(url, "cannot be reached", error)) from None


def _said(url: str, what: str, error: BaseException) -> str:
    return redact(f"Redis at {url} {what}: {error}")
