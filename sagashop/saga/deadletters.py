"""The events a service gave up on, kept with their error until someone replays them: written in
the transaction that gives up (`StepLog.give_up`), read and replayed by an operator."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sagashop.errors import Conflict
from sagashop.events import Event
from sagashop.store.batch import Script, Sql
from sagashop.store.book import canonical_uuid
from sagashop.store.journal import DeadLetter
from sagashop.store.render import as_json, found, now


class DeadLetters:
    """One service's dead letters, one per (order, step), counting its failures."""

    def __init__(self, service: str, letters: type[DeadLetter]) -> None:
        self.service = service
        self.letters = letters

    def bury(
        self, sql: Sql, event: Event, step: str, error: str, closed_with: str | None = None
    ) -> Script[None]:
        """Keep the event as the dead letter of its (order, step), inside the caller's
        transaction; again, it counts one failure more and waits for a replay again.
        `closed_with`: the failure event that closed the step, for a step that can fail."""
        moment = datetime.now(UTC)
        letter = {
            "order_id": canonical_uuid(event.order_id),
            "step": step,
            "event": event.to_dict(),
            "error": error,
            "failures": 1,
            "created_at": moment,
            "updated_at": moment,
            "replayed_at": None,
            "closed_with": closed_with,
        }
        again = {"event": "excluded", "error": "excluded", "updated_at": "excluded"}
        again |= {"failures": '{row}."failures" + 1', "replayed_at": "NULL"}
        yield sql.upsert(self.letters, letter, ("order_id", "step"), again)

    async def listed(
        self, after: Mapping[str, int] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The letters, oldest first, `limit` of them at most, past the number `after` gives
        this service (the last each service's letters gave on a page across all of them)."""
        mark = (after or {}).get(self.service, 0)
        chosen = self.letters.filter(id__gt=mark).order_by("id")
        letters = await (chosen if limit is None else chosen.limit(limit))
        return [
            {**as_json(letter), "id": f"{self.service}-{letter.id}", "service": self.service}
            for letter in letters
        ]

    async def count(self) -> int:
        """How many letters wait for a fix and a replay (not those replayed already, nor those
        whose step closed with its failure)."""
        return await self.letters.filter(replayed_at=None, closed_with=None).count()

    async def exhume(self, letter_id: int) -> Event:
        """The dead letter's event, for the caller to deliver again: claimed for this replay by
        the one statement that marks it replayed only if it waits for one, so two replays of a
        letter at once deliver it once (the other is told 409). A letter that fails again waits
        for a replay again (`bury`). A letter whose step closed with its failure event is not
        delivered: the step would only give that failure again (409)."""
        claimed = await self.letters.filter(
            id=letter_id, replayed_at=None, closed_with=None
        ).update(replayed_at=now())
        letter = await found(self.letters, str(letter_id), "dead letter")
        if letter.closed_with is not None:
            raise Conflict(
                f"dead letter {self.service}-{letter_id}: its step {letter.step} was closed with "
                f"{letter.closed_with} when given up, so the order was cancelled and what came "
                "before undone; a replay would only repeat that failure"
            )
        if not claimed:
            raise Conflict(
                f"dead letter {self.service}-{letter_id} was replayed already, and has not "
                "failed again since"
            )
        return Event.from_dict(letter.event)
