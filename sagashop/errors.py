"""Every error sagashop raises on purpose, in one tree, so that what is retried and what a
caller is told are decided by class:

    SagashopError                 the root; `answer()` is what a caller is told if it ends a request
    ├── CallerError               an answer for the caller (status and code), never retried: it
    │   │                         would only come again; it crosses processes by its code
    │   └── InvalidRequest, Forbidden, NotFound, Conflict, Unavailable (and http's own refusals)
    └── the system's own, each where it is raised: StoreConflict (taken again at once) and
        StoreUnavailable (taken again while the budget lasts; a caller is told 503), MalformedEvent
        and Rejected (a message refused at the bus's edge), SchemaError, InvalidToken, NoBusKeys,
        RedisRefused, NoRedisServer, NoPostgres
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar


class SagashopError(Exception):
    """The root of every error sagashop raises on purpose."""

    def answer(self) -> CallerError:
        """What a caller is told when this ends its request: an internal error, unless the
        class knows better (the store being away is a 503)."""
        return CallerError("internal error: see the server log")


class CallerError(SagashopError):
    """An answer for the caller: an HTTP status and a JSON body."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def answer(self) -> CallerError:
        return self

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidRequest(CallerError):
    status = 400
    code = "invalid_request"


class Forbidden(CallerError):
    """The caller may not do this here (a test-only control that is switched off)."""

    status = 403
    code = "forbidden"


class NotFound(CallerError):
    status = 404
    code = "not_found"


class Conflict(CallerError):
    """The request contradicts one made before (an idempotency key reused for another order)."""

    status = 409
    code = "conflict"


class Unavailable(CallerError):
    """A service did not answer: nobody runs it, or it is too slow right now."""

    status = 503
    code = "service_unavailable"


def answer_to(error: SagashopError, log: logging.Logger, where: str) -> CallerError:
    """The answer a caller gets for `error`. The system's own errors are logged first, in one
    line: the caller sees only the answer, so the log is where an operator finds the cause."""
    if not isinstance(error, CallerError):
        log.warning("%s: %s: %s", where, type(error).__name__, error)
    return error.answer()


_BY_CODE: dict[str, type[CallerError]] = {
    kind.code: kind
    for kind in (CallerError, InvalidRequest, Forbidden, NotFound, Conflict, Unavailable)
}


def error_from_dict(body: dict[str, Any]) -> CallerError:
    kind = _BY_CODE.get(str(body.get("code")), CallerError)
    return kind(str(body.get("message", "")), body.get("field"))
