"""Credentials in settings: shown without their password, and refused with a clear message.

A `REDIS_URL` or `DATABASE_URL` may carry `user:password@`. Whatever prints or logs one goes
through `redact` (the log formatters do it to every line, so a traceback that quotes a URL is
covered too), and a Redis that refuses the credentials, or cannot be reached, stops the start-up
with `RedisRefused`: one line naming the URL without its password and what Redis said.
"""

from __future__ import annotations

import re

from redis import exceptions
from redis.asyncio import Redis

from sagashop.errors import SagashopError

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


async def check_redis(redis: Redis, url: str) -> None:
    """Ping Redis once, so bad credentials stop the start-up with one clear line instead of a
    traceback from deep inside the client (which would not say which setting is wrong)."""
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
