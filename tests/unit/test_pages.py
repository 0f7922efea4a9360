"""A page across every service's dead letters, and the cursors that lead from page to page."""

from __future__ import annotations

from typing import Any

import pytest

from sagashop.errors import NotFound
from sagashop.http.pages import cursor, letter_marks, merge_letters, position


def letter(service: str, number: int, at: str) -> dict[str, Any]:
    return {"id": f"{service}-{number}", "service": service, "createdAt": at}


def test_a_cursor_gives_back_the_position_it_was_made_from() -> None:
    for after in (["2026-11-30T01:00:00+00:00", "a1b2"], {"item": 3, "user": 12}, [7]):
        made = cursor(after)
        assert made is not None
        assert position(made) == after
    assert cursor(None) is None


@pytest.mark.parametrize("made_up", ["bm9wZQ", "!!!!", "A"])  # "nope", not base64, cut short
def test_a_cursor_that_does_not_decode_names_no_page(made_up: str) -> None:
    with pytest.raises(NotFound):
        position(made_up)


def test_a_dead_letter_cursor_holds_numbers_per_service() -> None:
    assert letter_marks({"item": 3}) == {"item": 3}
    with pytest.raises(NotFound):
        letter_marks([3])
    with pytest.raises(NotFound):
        letter_marks({"item": "3"})


def test_letters_merge_oldest_first_and_the_cursor_holds_the_last_given_per_service() -> None:
    item = [letter("item", n, f"2026-01-0{n}") for n in (1, 3, 5)]
    user = [letter("user", n, f"2026-01-0{n + 1}") for n in (1, 3, 5)]

    page, after = merge_letters([item, user], {}, 3)

    assert [one["id"] for one in page] == ["item-1", "user-1", "item-3"]
    assert after == {"item": 3, "user": 1}


def test_the_last_page_has_no_cursor() -> None:
    page, after = merge_letters([[letter("item", 4, "2026-01-01")]], {"item": 3}, 3)
    assert [one["id"] for one in page] == ["item-4"]
    assert after is None
