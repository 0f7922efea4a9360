"""The event contract: the names and the one payload shape every service speaks.

Which service handles which event is declared by the services' steps (see `sagashop.actors`);
this module is only the vocabulary they share. Every event carries the whole purchase (order,
user, item, quantity, amount), so no service ever reads another service's state to act on it.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sagashop.errors import SagashopError

SCHEMA_VERSION = 1
MAX_QUANTITY = 99
"""As on HTTP: a purchase is of 1 to 99 units."""
MAX_TEXT = 2_000
"""The longest text field (a reason, an id) an event may carry."""


class EventName(StrEnum):
    """Every event of the purchase saga, grouped by the service that emits it."""

    ORDER_CREATED = "order.created"
    ORDER_COMPLETED = "order.completed"
    ORDER_EXPIRED = "order.expired"
    ORDER_CANCELLED = "order.cancelled"

    BALANCE_RESERVED = "balance.reserved"
    BALANCE_REJECTED = "balance.rejected"
    BALANCE_RELEASED = "balance.released"
    BALANCE_SPENT = "balance.spent"

    INVENTORY_RESERVED = "inventory.reserved"
    INVENTORY_REJECTED = "inventory.rejected"
    INVENTORY_RELEASED = "inventory.released"
    INVENTORY_FILLED = "inventory.filled"

    ITEM_RESERVED = "item.reserved"
    ITEM_REJECTED = "item.rejected"
    ITEM_RELEASED = "item.released"
    ITEM_SOLD = "item.sold"

    PAYMENT_PROCESSED = "payment.processed"
    PAYMENT_REJECTED = "payment.rejected"
    PAYMENT_REFUNDED = "payment.refunded"

    NOTIFICATION_SENT = "notification.sent"


COMPENSATIONS = frozenset(
    {
        EventName.BALANCE_RELEASED,
        EventName.INVENTORY_RELEASED,
        EventName.ITEM_RELEASED,
        EventName.PAYMENT_REFUNDED,
        EventName.ORDER_CANCELLED,
    }
)
"""Events that undo an earlier step (the saga's compensations)."""
FAILURES = frozenset(
    {
        EventName.BALANCE_REJECTED,
        EventName.INVENTORY_REJECTED,
        EventName.ITEM_REJECTED,
        EventName.PAYMENT_REJECTED,
        EventName.ORDER_EXPIRED,
    }
)
"""Events that refuse a step, after which the saga turns back."""


class StepKind(StrEnum):
    """What a step did for its saga: went forward, refused, or undid an earlier step."""

    FORWARD = "forward"
    FAILURE = "failure"
    COMPENSATION = "compensation"


def kind_of(name: str) -> StepKind:
    """How the monitor draws a step that emitted `name`."""
    if name in FAILURES:
        return StepKind.FAILURE
    return StepKind.COMPENSATION if name in COMPENSATIONS else StepKind.FORWARD


def refused_by(reason: str | None) -> str | None:
    """The service a failure reason names first ("payment: declined by the mock provider",
    "item failed: internal error (…)"); every reason of this saga starts so."""
    service = (reason or "").partition(":")[0].removesuffix(" failed")
    return service if service.isidentifier() else None


class MalformedEvent(SagashopError, ValueError):
    """Bytes from the bus that are not an event of this contract."""


def new_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> str:
    """ISO-8601 in UTC with microseconds: sorts as text, so timelines merge without parsing."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class Event:
    """One fact of one purchase saga."""

    name: EventName
    order_id: str
    user_id: str
    item_id: str
    quantity: int
    amount: int
    reason: str | None = None
    event_id: str = field(default_factory=new_id)
    causation_id: str | None = None
    occurred_at: str = field(default_factory=utc_now)
    version: int = SCHEMA_VERSION
    request_id: str | None = None
    """The HTTP request that started the purchase (`X-Request-Id`), carried by every event of
    its saga, so that each step's log line names it. Optional: events of before have none."""
    traceparent: str | None = None
    """The W3C `traceparent` of the last span that touched the event, when tracing is on (see
    `sagashop.tracing`); absent from the wire and the outbox when it is off."""

    def follow(self, name: EventName, reason: str | None = None) -> Event:
        """The event this one causes: the same purchase, a new identity, the reason carried on.
        (Written out: `dataclasses.replace` cost several times as much, on every step.)"""
        return Event(
            name,
            self.order_id,
            self.user_id,
            self.item_id,
            self.quantity,
            self.amount,
            reason if reason is not None else self.reason,
            new_id(),
            self.event_id,
            utc_now(),
            self.version,
            self.request_id,
            self.traceparent,
        )

    def traced(self, traceparent: str) -> Event:
        """The same event, as the span named by `traceparent` passes it on."""
        return Event(
            self.name,
            self.order_id,
            self.user_id,
            self.item_id,
            self.quantity,
            self.amount,
            self.reason,
            self.event_id,
            self.causation_id,
            self.occurred_at,
            self.version,
            self.request_id,
            traceparent,
        )

    def to_dict(self) -> dict[str, Any]:
        """Its fields, as `dataclasses.asdict` gives them, without its deep copy of each (and
        without a `traceparent` it has not)."""
        fields = {
            "name": self.name,
            "order_id": self.order_id,
            "user_id": self.user_id,
            "item_id": self.item_id,
            "quantity": self.quantity,
            "amount": self.amount,
            "reason": self.reason,
            "event_id": self.event_id,
            "causation_id": self.causation_id,
            "occurred_at": self.occurred_at,
            "version": self.version,
            "request_id": self.request_id,
        }
        if self.traceparent is not None:
            fields["traceparent"] = self.traceparent
        return fields

    @classmethod
    def from_dict(cls, data: Any) -> Event:
        """Rebuild an event from untrusted data; refuse anything that breaks the contract, with
        the same rules as the HTTP API (ids are UUIDs, 1 to 99 units, no negative amount): a
        signed event is still only as good as the process that signed it."""
        if not isinstance(data, dict):
            raise MalformedEvent(f"an event is a JSON object, not {type(data).__name__}")
        try:
            event = cls(
                name=EventName(data["name"]),
                order_id=_uuid(data, "order_id"),
                user_id=_uuid(data, "user_id"),
                item_id=_uuid(data, "item_id"),
                quantity=_integer(data, "quantity", 1, MAX_QUANTITY),
                amount=_integer(data, "amount", 0),
                reason=_optional_text(data, "reason"),
                event_id=_uuid(data, "event_id"),
                causation_id=_optional_uuid(data, "causation_id"),
                occurred_at=_moment(data, "occurred_at"),
                version=_integer(data, "version"),
                request_id=_optional_request_id(data),
                traceparent=optional_traceparent(data.get("traceparent")),
            )
        except KeyError as missing:
            raise MalformedEvent(f"event field {missing} is missing") from None
        except ValueError as error:
            raise MalformedEvent(str(error)) from None
        if event.version != SCHEMA_VERSION:
            raise MalformedEvent(f"event version {event.version} is not {SCHEMA_VERSION}")
        return event


def encode(event: Event) -> str:
    return json.dumps(event.to_dict(), separators=(",", ":"))


def decode(raw: str | bytes) -> Event:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedEvent(f"not JSON: {error}") from None
    return Event.from_dict(data)


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise ValueError(f"event field {key!r} must be a non-empty string (at most {MAX_TEXT})")
    return value


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else _text(data, key)


def _uuid(data: dict[str, Any], key: str) -> str:
    """The id in its one canonical spelling, so that every key made from it matches."""
    value = _text(data, key)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"event field {key!r} must be a UUID") from None


REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""What a request id may be: what a proxy or a client sends as `X-Request-Id` (a UUID, a hex
string, a trace id), nothing that could break a log line."""


def _optional_request_id(data: dict[str, Any]) -> str | None:
    value = data.get("request_id")
    if value is None:
        return None
    if not isinstance(value, str) or not REQUEST_ID.fullmatch(value):
        raise ValueError("event field 'request_id' must be 1 to 128 of A-Z a-z 0-9 . _ : -")
    return value


TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")
"""A W3C `traceparent` of version 00, with a trace id and a span id that are not all zeros."""


def optional_traceparent(value: Any) -> str | None:
    """A `traceparent` from outside (an event, a command's arguments), checked."""
    if value is None:
        return None
    if not isinstance(value, str) or not TRACEPARENT.fullmatch(value):
        raise ValueError("event field 'traceparent' must be a W3C traceparent (00-…-…-..)")
    return value


def _optional_uuid(data: dict[str, Any], key: str) -> str | None:
    return None if data.get(key) is None else _uuid(data, key)


def _moment(data: dict[str, Any], key: str) -> str:
    value = _text(data, key)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"event field {key!r} must be an ISO-8601 time") from None
    return value


def _integer(
    data: dict[str, Any], key: str, least: int | None = None, most: int | None = None
) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"event field {key!r} must be an integer")
    if (least is not None and value < least) or (most is not None and value > most):
        raise ValueError(f"event field {key!r} is {value}, outside {least}..{most}")
    return value
