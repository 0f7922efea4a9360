"""Small openings a prober found, each closed: a token made to live for years, a page cursor
past a database integer, names that would show publicly as something else. Auth on, as on a
deployed system."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

import sagashop.tokens as tokens
from sagashop.tokens import SigningKey
from tests.support import Shop, on_systems

pytestmark = on_systems("sqlite-pubsub")  # none of these depends on the store or the bus

KEYS = (SigningKey("k1", "a-signing-key-for-the-hostile-input-tests"),)
TTL = 3600.0


@pytest.fixture(scope="module")
def system_settings() -> dict[str, Any]:
    return {"auth": True, "auth_keys": KEYS, "token_ttl": TTL}


def operator(ttl: float = TTL, now: float | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(KEYS, tokens.OPERATOR, ttl, now)}"}


@pytest.mark.parametrize(
    "lifetime", [100 * 365 * 86400.0, TTL + 3600], ids=["a century", "an hour too long"]
)
async def test_a_token_made_to_live_longer_than_tokens_live_here_is_refused(
    shop: Shop, lifetime: float
) -> None:
    """Signed with the system's own key (one that leaked, say): still refused."""
    status, answer = await shop.call("GET", "/summary", headers=operator(lifetime))
    assert (status, answer["error"]["code"]) == (401, "unauthorized")
    assert "lives longer" in answer["error"]["message"]


async def test_a_token_of_the_usual_lifetime_is_taken_even_with_a_clock_a_little_off(
    shop: Shop,
) -> None:
    await shop.ok("GET", "/summary", headers=operator())
    await shop.ok("GET", "/summary", headers=operator(TTL + 30, now=time.time() - 30))


@pytest.mark.parametrize("mark", [2**63, 10**30, -1])
async def test_a_dead_letter_cursor_past_any_letter_names_no_page(shop: Shop, mark: int) -> None:
    raw = json.dumps({"item": mark}).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    status, answer = await shop.call(
        "GET", "/dead-letters", params={"cursor": cursor}, headers=operator()
    )
    assert (status, answer["error"]["code"]) == (404, "not_found")
    assert "cursor" in answer["error"]["message"]


@pytest.mark.parametrize(
    "name",
    [
        "gold\u202eevil",  # RIGHT-TO-LEFT OVERRIDE: shows as "goldlive"
        "admin\u200b",  # ZERO WIDTH SPACE: looks like "admin"
        "a\u2066b",  # LEFT-TO-RIGHT ISOLATE
        "bell\u0007",  # a control character
        "two\u2028lines",  # LINE SEPARATOR
        "soft\u00adhyphen",  # SOFT HYPHEN (a format character)
        "private\ue000use",
    ],
)
async def test_a_name_that_would_show_as_another_is_refused(shop: Shop, name: str) -> None:
    before = await shop.ok("GET", "/summary", headers=operator())
    for path, body in (
        ("/users", {"username": name, "balance": 10}),
        ("/items", {"name": name, "price": 10, "stock": 1}),
    ):
        status, answer = await shop.call("POST", path, json=body, headers=operator())
        assert (status, answer["error"]["code"]) == (400, "invalid_request"), path
        assert "may not be in a name" in answer["error"]["message"]
    assert await shop.ok("GET", "/summary", headers=operator()) == before
    items = await shop.ok("GET", "/items", headers=operator())
    assert all(item["name"] != name for item in items["items"])


@pytest.mark.parametrize(
    "name",
    ["전설의 검", "Épée +1", "Kalashnikov-47 (\u2160\u2164) \u2605", "山田 太郎", "Ωmega"],
)
async def test_names_of_any_script_with_punctuation_and_symbols_are_kept(
    shop: Shop, name: str
) -> None:
    user = await shop.ok(
        "POST", "/users", 201, json={"username": name, "balance": 10}, headers=operator()
    )
    item = await shop.ok(
        "POST", "/items", 201, json={"name": name, "price": 10, "stock": 1}, headers=operator()
    )
    assert (user["username"], item["name"]) == (name, name)
