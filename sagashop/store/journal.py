"""The tables the saga runtime keeps in every service's database: the steps it took (which are
also its outbox and the order's timeline) and the events it gave up on."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class StepRecord(Model):
    """One saga step a service has handled: its idempotency key, its outbox entry and its place
    in the order's timeline, written in the same transaction as the step's state change.

    (order_id, step) is unique, so a redelivered event finds the row and replays `outcome`
    instead of acting twice; `published` turns true once the relay has put `outcome` on the
    bus, so a crash between commit and publish loses nothing.
    """

    id = fields.BigIntField(primary_key=True)
    order_id = fields.UUIDField()
    step = fields.CharField(max_length=32)
    handled = fields.CharField(max_length=40)
    outcome: Any = fields.JSONField(null=True)
    published = fields.BooleanField(default=False, db_index=True)
    handled_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        abstract = True


class DeadLetter(Model):
    """An event whose step kept failing, kept with its error until someone replays it."""

    id = fields.BigIntField(primary_key=True)
    order_id = fields.UUIDField()
    step = fields.CharField(max_length=32)
    event: Any = fields.JSONField()
    error = fields.TextField()
    failures = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    replayed_at = fields.DatetimeField(null=True)
    closed_with = fields.CharField(max_length=64, null=True)
    """The failure event its step was closed with when given up (a step that can fail): the
    saga was undone then, so there is nothing to replay."""

    class Meta:
        abstract = True


def journal_tables(service: str, module: str) -> tuple[type[StepRecord], type[DeadLetter]]:
    """The service's own `<service>_steps` and `<service>_dead_letters` tables, for its tables
    module to name (`OrderStep, OrderDeadLetter = journal_tables(ServiceName.ORDER, __name__)`).

    Tortoise does not inherit an abstract model's Meta, so each concrete table needs its own;
    this builds both the same way for every service."""
    return (
        _table(StepRecord, f"{service.title()}Step", f"{service}_steps", module),
        _table(DeadLetter, f"{service.title()}DeadLetter", f"{service}_dead_letters", module),
    )


def _table(base: type[Model], name: str, table: str, module: str) -> Any:
    meta = type("Meta", (), {"table": table, "unique_together": (("order_id", "step"),)})
    metaclass: Any = type(base)
    return metaclass(name, (base,), {"__module__": module, "__qualname__": name, "Meta": meta})
