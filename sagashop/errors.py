"""Errors a caller can act on. They cross process boundaries by their code, so a service in
another process raises the same error here as it would in this one."""

from __future__ import annotations

from typing import Any, ClassVar


class SagashopError(Exception):
    """Base of the errors that map to an HTTP status and a JSON body."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class InvalidRequest(SagashopError):
    status = 400
    code = "invalid_request"


class Forbidden(SagashopError):
    """The caller may not do this here (a test-only control that is switched off)."""

    status = 403
    code = "forbidden"


class NotFound(SagashopError):
    status = 404
    code = "not_found"


class Conflict(SagashopError):
    """The request contradicts one made before (an idempotency key reused for another order)."""

    status = 409
    code = "conflict"


class Unavailable(SagashopError):
    """A service did not answer: nobody runs it, or it is too slow right now."""

    status = 503
    code = "service_unavailable"


_BY_CODE: dict[str, type[SagashopError]] = {
    kind.code: kind
    for kind in (SagashopError, InvalidRequest, Forbidden, NotFound, Conflict, Unavailable)
}


def error_from_dict(body: dict[str, Any]) -> SagashopError:
    kind = _BY_CODE.get(str(body.get("code")), SagashopError)
    return kind(str(body.get("message", "")), body.get("field"))
