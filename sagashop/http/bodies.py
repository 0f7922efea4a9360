"""What the front door accepts: strict JSON bodies, so bad input never reaches a service."""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection
from typing import Annotated, TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from sagashop.errors import InvalidRequest, NotFound
from sagashop.events import new_id
from sagashop.http.errors import UnsupportedMediaType

MAX_QUANTITY = 99
MAX_BALANCE = 10**12
MAX_PRICE = 10**9
MAX_STOCK = 10**6

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class Body(BaseModel):
    """Strict: no extra fields, no "2" for 2, no 1.5 or true for an integer."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PlaceOrder(Body):
    userId: UUID
    itemId: UUID
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class NewUser(Body):
    username: Name
    balance: int = Field(ge=0, le=MAX_BALANCE)
    active: bool = True


class NewItem(Body):
    name: Name
    price: int = Field(ge=1, le=MAX_PRICE)
    stock: int = Field(ge=0, le=MAX_STOCK)


B = TypeVar("B", bound=Body)


async def read_body(request: web.Request, shape: type[B]) -> B:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"send the body as application/json, not {request.content_type or 'nothing'}"
        )
    raw = await request.read()
    try:
        return shape.model_validate_json(raw)
    except ValidationError as error:
        raise _invalid(error) from None


def _invalid(error: ValidationError) -> InvalidRequest:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    messages = {
        "json_invalid": "the body is not valid JSON",
        "model_type": "the body must be a JSON object",
        "missing": f"{field} is required",
        "extra_forbidden": f"{field} is not a field of this request",
    }
    message = messages.get(first["type"], f"{field}: {first['msg']}")
    return InvalidRequest(message, field)


def path_id(request: web.Request, key: str, what: str) -> str:
    """A UUID from the path; anything else names nothing that exists."""
    raw = request.match_info[key]
    try:
        return str(UUID(raw))
    except ValueError:
        raise NotFound(f"no {what} with id {raw!r} (ids are UUIDs)") from None


def dead_letter_id(raw: str, services: Collection[str]) -> tuple[str, int]:
    """`item-3` names dead letter 3 of the item service."""
    service, _, number = raw.rpartition("-")
    if service not in services or not number.isdigit():
        raise NotFound(f"no dead letter {raw!r} (ids look like item-3)")
    return service, int(number)


MAX_WAIT = 60.0


def wait_seconds(request: web.Request) -> float:
    """`?wait=SECONDS`: how long a read may wait for the order to end (0 to 60, default 0)."""
    raw = request.query.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not 0.0 <= wait <= MAX_WAIT:
        raise InvalidRequest(
            f"wait is a number of seconds from 0 to {MAX_WAIT:g}, not {raw!r}", "wait"
        )
    return wait


IDEMPOTENCY_KEYS = uuid.UUID("5a6a5f1e-2c1b-4f64-9a53-3b1f3c0d8e21")
MAX_KEY_LENGTH = 255


def order_id_for(idempotency_key: str | None) -> str:
    """A new order id, or the one this idempotency key always stands for."""
    if idempotency_key is None:
        return new_id()
    if not 0 < len(idempotency_key) <= MAX_KEY_LENGTH:
        raise InvalidRequest(
            f"an Idempotency-Key has 1 to {MAX_KEY_LENGTH} characters", "Idempotency-Key"
        )
    return str(uuid.uuid5(IDEMPOTENCY_KEYS, idempotency_key))
