"""What the front door accepts: strict JSON bodies, so bad input never reaches a service."""

from __future__ import annotations

import asyncio
import re
import unicodedata
import uuid
from collections.abc import Collection
from typing import Annotated, Any, TypeVar
from uuid import UUID

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from sagashop.errors import InvalidRequest, NotFound
from sagashop.events import new_id
from sagashop.http.context import NODE
from sagashop.http.errors import RequestTimeout, UnsupportedMediaType
from sagashop.store.order import OrderStatus
from sagashop.tokens import ANONYMOUS

MAX_QUANTITY = 99
MAX_BALANCE = 10**12
MAX_PRICE = 10**9
MAX_STOCK = 10**6
MAX_LIST = 200
MAX_NAME = 64

HIDDEN = frozenset({"Cc", "Cf", "Co", "Zl", "Zp"})
"""What a name may not hold: controls, format characters (zero-width, the bidirectional
overrides and isolates, invisible tags), private use and line separators, which would make a
name shown publicly read as another, or break what shows it. Letters, marks, digits,
punctuation, symbols and spaces of any script are kept."""
_SCANNED = (range(0x0000, 0x20000), range(0xE0000, 0xE1000))
"""The planes with such characters (0, 1 and 14); 15 and 16 are private use throughout."""


def _hidden_ranges() -> list[tuple[int, int]]:
    found = [
        code
        for plane in _SCANNED
        for code in plane
        if not 0xD800 <= code <= 0xDFFF and unicodedata.category(chr(code)) in HIDDEN
    ]
    ranges: list[tuple[int, int]] = []
    for code in found:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return [*ranges, (0xF0000, 0xFFFFD), (0x100000, 0x10FFFD)]


NAME_PATTERN = "^[^" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _hidden_ranges()) + "]*$"
"""The same rule as the OpenAPI document states it, so that a client can check a name first
(its characters literal, as Python's and Rust's regular expressions take them)."""
_NAME = re.compile(NAME_PATTERN)


def _shown_as_is(name: str) -> str:
    if _NAME.match(name) is None:
        hidden = next(c for c in name if _NAME.match(c) is None)
        described = unicodedata.name(hidden, unicodedata.category(hidden))
        raise ValueError(
            f"U+{ord(hidden):04X} ({described}) may not be in a name: letters, digits, "
            "spaces, punctuation and symbols only"
        )
    return name


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME),
    AfterValidator(_shown_as_is),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": NAME_PATTERN}
    ),
]


def _whole(value: Any) -> Any:
    """46.0 is the integer 46, as JSON Schema (and so the OpenAPI document) says; 46.5, "46"
    and true are left as they are, for the strict check to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Whole = Annotated[int, BeforeValidator(_whole)]
"""An integer field of a body: a JSON number with no fraction."""


class Body(BaseModel):
    """Strict: no extra fields, no "2" for 2, no 1.5 or true for an integer (but 2.0 is 2)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Query(BaseModel):
    """Query parameters: text in the URL, so "50" is 50; parameters not named are ignored."""

    model_config = ConfigDict(frozen=True)


Q = TypeVar("Q", bound=Query)


def examples(*values: dict[str, Any]) -> ConfigDict:
    """A model's examples, for the OpenAPI document (merged with its base's configuration)."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


class PlaceOrder(Body):
    """A purchase: who buys what, how many."""

    model_config = examples(
        {
            "userId": "abf12b21-9243-4119-aa78-a3e19ff93141",
            "itemId": "556b21ca-2bcc-4bb0-a055-2fbe99b45c5f",
            "quantity": 1,
        }
    )

    userId: UUID = Field(description="the buyer (with auth on, a player buys for themself)")
    itemId: UUID = Field(description="the item to buy")
    quantity: Whole = Field(ge=1, le=MAX_QUANTITY, description="how many, 1 to 99")


class NewUser(Body):
    """A new user."""

    model_config = examples({"username": "alice", "balance": 50000, "active": True})

    username: Name = Field(description="shown as given; need not be unique")
    balance: Whole = Field(ge=0, le=MAX_BALANCE, description="money to spend at first")
    active: bool = Field(True, description="an inactive user's purchases are refused")


class NewItem(Body):
    """A new item."""

    model_config = examples({"name": "Legendary Sword", "price": 10000, "stock": 50})

    name: Name = Field(description="shown as given; need not be unique")
    price: Whole = Field(ge=1, le=MAX_PRICE, description="the price of one")
    stock: Whole = Field(ge=0, le=MAX_STOCK, description="how many there are to sell")


class FailureRate(Body):
    """The payment mock's decline rate to set."""

    model_config = examples({"failureRate": 0.25}, {"failureRate": 0.5, "seed": 7})

    failureRate: float = Field(ge=0.0, le=1.0, description="The share of charges to decline")
    seed: int | None = Field(
        None, description="Makes each order's fate depend only on the seed and its id"
    )


CURSOR = r"^[A-Za-z0-9_-]{1,1024}$"
"""A page's cursor: base64url text (see `http.pages`)."""


_HEX = "[0-9a-fA-F]"
ID_PREFIX = (
    f"^(?:{_HEX}{{1,8}}|{_HEX}{{8}}-(?:{_HEX}{{0,3}}|{_HEX}{{4}}(?:-(?:{_HEX}{{0,3}}|{_HEX}{{4}}"
    f"(?:-(?:{_HEX}{{0,3}}|{_HEX}{{4}}(?:-{_HEX}{{0,12}})?))?))?))$"
)
"""The first characters of a UUID as it is written (8-4-4-4-12 hex digits), in any case."""


class OrderListQuery(Query):
    status: OrderStatus | None = Field(None, description="Only orders of this status")
    limit: int = Field(50, ge=1, le=MAX_LIST, description="How many, newest first")
    cursor: str | None = Field(
        None, pattern=CURSOR, description="where to go on from: the `next` of the page before"
    )
    idPrefix: str | None = Field(
        None,
        pattern=ID_PREFIX,
        description="Only orders whose id begins with this (1 to 36 characters of a UUID, "
        "dashes where the id has them, any case), in id order instead of newest first",
    )


B = TypeVar("B", bound=Body)


async def read_body(request: web.Request, shape: type[B]) -> B:
    if request.content_type != "application/json":
        raise UnsupportedMediaType(
            f"send the body as application/json, not {request.content_type or 'nothing'}"
        )
    raw = await _read_in_time(request)
    try:
        return shape.model_validate_json(raw)
    except ValidationError as error:
        raise _invalid(error) from None


async def _read_in_time(request: web.Request) -> bytes:
    """The body, if it all arrives within `--body-timeout`: a client sending a byte now and
    then would otherwise hold a connection, and a handler, for as long as it likes."""
    seconds = request.app[NODE].settings.body_timeout
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except TimeoutError:
        raise RequestTimeout(seconds) from None


def read_query(request: web.Request, shape: type[Q]) -> Q:
    try:
        return shape.model_validate(dict(request.query))
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


def path_id(request: web.Request, key: str) -> str:
    """A UUID from the path (`key` is `order_id`, say); anything else names nothing that exists."""
    raw = request.match_info[key]
    try:
        return str(UUID(raw))
    except ValueError:
        what = key.removesuffix("_id")
        raise NotFound(f"no {what} with id {raw!r} (ids are UUIDs)") from None


class OrderPath(BaseModel):
    order_id: UUID = Field(description="the order's id (anything but a UUID is a 404)")


class UserPath(BaseModel):
    user_id: UUID = Field(description="the user's id (anything but a UUID is a 404)")


LETTER_ID = r"^[a-z]+-[0-9]{1,18}$"


class LetterPath(BaseModel):
    letter_id: str = Field(pattern=LETTER_ID, description="a service and a number: item-3")


def dead_letter_id(raw: str, services: Collection[str]) -> tuple[str, int]:
    """`item-3` names dead letter 3 of the item service."""
    service, _, number = raw.rpartition("-")
    if service not in services or not re.fullmatch(LETTER_ID, raw):
        raise NotFound(f"no dead letter {raw!r} (ids look like item-3)")
    return service, int(number)


MAX_WAIT = 60.0


class Wait(Query):
    wait: float = Field(
        0.0,
        ge=0.0,
        le=MAX_WAIT,
        allow_inf_nan=False,
        description="answer once the order has ended, or after this many seconds at most",
    )


def wait_seconds(request: web.Request) -> float:
    """`?wait=SECONDS`: how long a read may wait for the order to end (0 to 60, default 0)."""
    try:
        return Wait.model_validate(dict(request.query)).wait
    except ValidationError:
        raw = request.query.get("wait")
        message = f"wait is a number of seconds from 0 to {MAX_WAIT:g}, not {raw!r}"
        raise InvalidRequest(message, "wait") from None


IDEMPOTENCY_KEYS = uuid.UUID("5a6a5f1e-2c1b-4f64-9a53-3b1f3c0d8e21")
MAX_KEY_LENGTH = 255


class IdempotencyHeader(BaseModel):
    key: str | None = Field(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="the same key again answers with the same order instead of buying twice",
    )


def order_id_for(idempotency_key: str | None, caller: str = ANONYMOUS) -> str:
    """A new order id, or the one this caller's idempotency key always stands for. A key is
    scoped to its caller, so nobody can name another player's order by sending their key;
    the anonymous caller (auth off) keeps the ids keys always had."""
    try:
        key = IdempotencyHeader.model_validate({"Idempotency-Key": idempotency_key}).key
    except ValidationError:
        message = f"an Idempotency-Key has 1 to {MAX_KEY_LENGTH} characters"
        raise InvalidRequest(message, "Idempotency-Key") from None
    return new_id() if key is None else str(uuid.uuid5(_keys_of(caller), key))


def _keys_of(caller: str) -> uuid.UUID:
    return IDEMPOTENCY_KEYS if caller == ANONYMOUS else uuid.uuid5(IDEMPOTENCY_KEYS, caller)
