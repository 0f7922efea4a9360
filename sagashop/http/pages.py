"""Pages of the lists the API answers: `?limit=` (1 to 200, default 50) and `?cursor=`, the
`next` of the page before. Every list answer has `next`: the cursor of the page after it, or
null on the last page.

A cursor is opaque to clients: base64url of the position the service gave (see
`sagashop.store.pages`), JSON inside. Nothing in it is a secret or grants anything: a cursor a
client makes up at best names a position in a list it may read anyway. A cursor that is not
base64url text is a 400, and one that is but names no position a 404 (no such page), both
naming `cursor`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from itertools import chain
from typing import Any

from aiohttp import web
from pydantic import Field

from sagashop.http.bodies import CURSOR, MAX_LIST, Query, read_query
from sagashop.store.pages import PAGE, no_page


class PageQuery(Query):
    limit: int = Field(PAGE, ge=1, le=MAX_LIST, description="how many at most")
    cursor: str | None = Field(
        None, pattern=CURSOR, description="where to go on from: the `next` of the page before"
    )


def page_asked(request: web.Request) -> tuple[int, Any]:
    """The page a request asks for: its limit and the position it starts after (None: the
    first page)."""
    asked = read_query(request, PageQuery)
    return asked.limit, None if asked.cursor is None else position(asked.cursor)


def cursor(after: Any) -> str | None:
    """The cursor a client is given for a service's position (None: no next page)."""
    if after is None:
        return None
    text = json.dumps(after, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def position(text: str) -> Any:
    """The position a cursor stands for; 400 naming `cursor` if it is not one."""
    try:
        padded = text + "=" * (-len(text) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise no_page() from None


def with_cursor(answer: dict[str, Any]) -> dict[str, Any]:
    """A service's page, its `next` position made a cursor."""
    return {**answer, "next": cursor(answer.get("next"))}


def letter_marks(after: Any) -> dict[str, int]:
    """A dead-letter page's position: the last letter number it gave, per service."""
    if after is None:
        return {}
    if not isinstance(after, dict) or not all(
        isinstance(mark, int) and not isinstance(mark, bool) and 0 <= mark < 2**63
        for mark in after.values()
    ):
        raise no_page()  # a letter number is a BIGINT: past it, no page (not the database's error)
    return {str(service): mark for service, mark in after.items()}


Letter = dict[str, Any]


def merge_letters(
    found: Iterable[list[Letter]], marks: dict[str, int], limit: int
) -> tuple[list[Letter], dict[str, int] | None]:
    """The first `limit` letters, oldest first, of each service's next `limit + 1`, and the
    position after them (None when no service has more: none was left over)."""
    letters = sorted(chain.from_iterable(found), key=lambda one: (one["createdAt"], one["id"]))
    page, rest = letters[:limit], letters[limit:]
    if not rest:
        return page, None
    after = dict(marks)
    for letter in page:
        number = int(letter["id"].rpartition("-")[2])
        after[letter["service"]] = max(after.get(letter["service"], 0), number)
    return page, after
