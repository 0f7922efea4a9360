"""The one error mapping of the front door: every failure becomes a status and
`{"error": {"code", "message"[, "field"]}}`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, Field

from sagashop.errors import CallerError, SagashopError, answer_to

log = logging.getLogger(__name__)

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ErrorDetail(BaseModel):
    """What went wrong."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="what went wrong, for a program: not_found, invalid_request, …")
    message: str = Field(description="what went wrong, for a person")
    field: str | None = Field(None, description="the request's field at fault, if one is")


class ErrorBody(BaseModel):
    """An error: its code, its message, and the field at fault if one is."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "not_found",
                        "message": "no user with id 8c1f4e0e-7f43-4a2b-9a4c-1b2d3e4f5a6b",
                    }
                },
                {
                    "error": {
                        "code": "invalid_request",
                        "message": "balance: Input should be greater than or equal to 0",
                        "field": "balance",
                    }
                },
            ]
        },
    )

    error: ErrorDetail = Field(description="what went wrong")


class UnsupportedMediaType(CallerError):
    status = 415
    code = "unsupported_media_type"


class Refusal(CallerError):
    """A refusal whose answer says more in its headers (429's `Retry-After`), or that ends the
    connection (408: the rest of a body too slow to come is not worth waiting for)."""

    headers: Mapping[str, str] = {}
    close = False


class TooManyRequests(Refusal):
    status = 429
    code = "too_many_requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests: try again in {retry_after} s")
        self.headers = {"Retry-After": str(retry_after)}


class RequestTimeout(Refusal):
    status = 408
    code = "request_timeout"
    close = True

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the body did not arrive within {seconds:g} s")


def error_response(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response({"error": body}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SagashopError as error:
        return _refused(answer_to(error, log, f"{request.method} {request.path}"))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        body = {"code": _HTTP_CODES.get(error.status, "http_error")}
        response = error_response(error.status, {**body, "message": _describe(request, error)})
        if "Allow" in error.headers:  # a 405 says which methods are (RFC 9110, 15.5.6)
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, {"code": "internal_error", "message": "see the server log"})


def _refused(error: CallerError) -> web.Response:
    response = error_response(error.status, error.to_dict())
    if isinstance(error, Refusal):
        response.headers.update(error.headers)
        if error.close:
            response.force_close()
    return response


def _describe(request: web.Request, error: web.HTTPException) -> str:
    if error.status == 404:
        return f"no such endpoint: {request.method} {request.path}"
    if error.status == 405:
        return f"{request.method} is not allowed on {request.path}"
    if error.status == 413:
        return f"the body is larger than {request.client_max_size} bytes"
    return error.reason
