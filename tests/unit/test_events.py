"""The event contract: what goes on the bus comes back the same, and nothing else gets in."""

from __future__ import annotations

import json

import pytest

from sagashop.events import Event, EventName, MalformedEvent, decode, encode, new_id

CREATED = Event(EventName.ORDER_CREATED, new_id(), new_id(), new_id(), quantity=2, amount=2000)


def test_an_event_survives_the_bus() -> None:
    assert decode(encode(CREATED)) == CREATED


def test_a_following_event_carries_the_purchase_and_its_cause() -> None:
    rejected = CREATED.follow(EventName.BALANCE_REJECTED, "user: balance too low")
    released = rejected.follow(EventName.BALANCE_RELEASED)

    assert (rejected.order_id, rejected.amount, rejected.quantity) == (CREATED.order_id, 2000, 2)
    assert rejected.causation_id == CREATED.event_id
    assert rejected.event_id != CREATED.event_id
    assert released.reason == "user: balance too low"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"name": "order.exploded"}, "order.exploded"),
        ({"quantity": "2"}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"amount": 1.5}, "amount"),
        ({"order_id": ""}, "order_id"),
        ({"version": 2}, "version"),
        ({"user_id": None}, "user_id"),
        ({"order_id": "o-1"}, "order_id.*UUID"),
        ({"item_id": "../../etc"}, "item_id.*UUID"),
        ({"event_id": "x" * 5000}, "event_id"),
        ({"causation_id": "nope"}, "causation_id.*UUID"),
        ({"quantity": 0}, "quantity.*outside"),
        ({"quantity": 100}, "quantity.*outside"),
        ({"amount": -1}, "amount.*outside"),
        ({"amount": -(10**9)}, "amount.*outside"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"reason": "r" * 3000}, "reason"),
        ({"request_id": "has spaces"}, "request_id"),
        ({"request_id": "x\r\nforged: line"}, "request_id"),
        ({"request_id": "r" * 129}, "request_id"),
        ({"request_id": 42}, "request_id"),
        ({"traceparent": "00-" + "0" * 32 + "-b7ad6b7169203331-01"}, "traceparent"),
        ({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-" + "0" * 16 + "-01"}, "traceparent"),
        ({"traceparent": "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, "traceparent"),
        ({"traceparent": "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"}, "traceparent"),
        ({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"}, "trace"),
        ({"traceparent": ["00"]}, "traceparent"),
    ],
)
def test_anything_off_contract_is_refused(change: dict[str, object], complaint: str) -> None:
    raw = json.dumps({**CREATED.to_dict(), **change})
    with pytest.raises(MalformedEvent, match=complaint):
        decode(raw)


def test_missing_fields_and_non_objects_are_refused() -> None:
    data = CREATED.to_dict()
    del data["item_id"]
    with pytest.raises(MalformedEvent, match="item_id"):
        Event.from_dict(data)
    with pytest.raises(MalformedEvent, match="object"):
        decode("[1, 2]")
    with pytest.raises(MalformedEvent, match="JSON"):
        decode("{nope")


def test_the_request_id_is_carried_down_the_saga_and_optional_on_the_wire() -> None:
    """Events of before carry none, and are taken as they are."""
    placed = Event(EventName.ORDER_CREATED, new_id(), new_id(), new_id(), 1, 10, request_id="rq-1")
    followed = placed.follow(EventName.BALANCE_RESERVED).follow(EventName.INVENTORY_RESERVED)
    assert followed.request_id == "rq-1"
    assert decode(encode(followed)) == followed
    older = CREATED.to_dict()
    del older["request_id"]
    assert Event.from_dict(older) == CREATED


def test_a_traceparent_is_passed_on_and_absent_from_the_wire_when_tracing_is_off() -> None:
    """With tracing off the wire and the outbox are as before; on, the step's span is carried
    to what follows, and an event keeps its identity as each span passes it on."""
    assert "traceparent" not in CREATED.to_dict()
    span = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    traced = CREATED.traced(span)
    assert (traced.event_id, traced.traceparent) == (CREATED.event_id, span)
    assert traced.follow(EventName.BALANCE_RESERVED).traceparent == span
    assert decode(encode(traced)) == traced
