"""With auth on, nobody spends or reads what is not theirs: the real system in this process,
called as players, as an operator and as strangers with forged, expired or stolen tokens."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from sagashop import tokens
from sagashop.config import Settings
from sagashop.tokens import Claims, SigningKey
from tests.support import Shop, eventually, on_systems, operations

pytestmark = on_systems("sqlite-pubsub", "sqlite-streams")  # the hostile tests, on each transport

NEW = SigningKey("k2", "the-new-key-that-signs-every-token-now")
OLD = SigningKey("k1", "the-old-key-still-listed-while-tokens-live")
REMOVED = SigningKey("k0", "a-key-taken-out-of-the-list-last-month")
KEYS = (NEW, OLD)
TTL = 600.0


@pytest.fixture(scope="module")
def system_settings() -> dict[str, Any]:
    return {"auth": True, "auth_keys": KEYS}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed(claims: Claims, keys: tuple[SigningKey, ...] = KEYS, **kwargs: Any) -> dict[str, str]:
    return bearer(tokens.issue(keys, claims, TTL, **kwargs))


OPERATOR = signed(tokens.OPERATOR)


@dataclass
class World:
    """Two players, each with a token, and an item they can buy."""

    alice: str
    bob: str
    item: str

    def as_alice(self) -> dict[str, str]:
        return signed(tokens.player(self.alice))

    def as_bob(self) -> dict[str, str]:
        return signed(tokens.player(self.bob))


@pytest.fixture(scope="module")
async def world(shop: Shop) -> World:
    users = [
        await shop.ok(
            "POST", "/users", 201, json={"username": name, "balance": 50_000}, headers=OPERATOR
        )
        for name in ("alice", "bob")
    ]
    body = {"name": "Sword", "price": 1_000, "stock": 100}
    item = await shop.ok("POST", "/items", 201, json=body, headers=OPERATOR)
    return World(users[0]["id"], users[1]["id"], item["id"])


async def books(shop: Shop, world: World) -> dict[str, Any]:
    """What a refused request must leave as it was: balances, stock, everybody's orders, read
    once no order of theirs is still owed a step (an earlier test's purchase, or its undoing,
    may still be moving money)."""
    return await eventually(lambda: _books(shop, world), lambda seen: not seen["in flight"])


async def _books(shop: Shop, world: World) -> dict[str, Any]:
    """The orders first: when none owes anything, no step is left to move what is read after."""

    async def read(path: str) -> Any:
        return await shop.ok("GET", path, headers=OPERATOR)

    orders = [(await read(f"/user/{u}/orders"))["orders"] for u in (world.alice, world.bob)]
    items = (await read("/items"))["items"]
    return {
        "orders": [len(theirs) for theirs in orders],
        "in flight": sum(1 for theirs in orders for order in theirs if order["owes"]),
        "balances": [
            (await read(f"/user/{u}/balance"))["balance"] for u in (world.alice, world.bob)
        ],
        "stock": next(i["stock"] for i in items if i["id"] == world.item),
        "all orders": (await read("/summary"))["orders"],
    }


def segment(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def forged(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return f"{segment(header)}.{segment(payload)}.{signature}"


def claims_of(user: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user, "role": "player", "iat": now, "exp": now + 600, **changes}


def tampered(token: str, **changes: Any) -> str:
    """The token with its claims changed and its signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"{header}.{segment({**claims, **changes})}.{signature}"


def bad_tokens(alice: str) -> Iterable[tuple[str, dict[str, str]]]:
    """Every way a stranger may present themself as alice, with what makes it wrong."""
    as_alice = tokens.player(alice)
    valid = tokens.issue(KEYS, as_alice, TTL)
    yield "no token", {}
    yield "not a bearer token", {"Authorization": f"Basic {valid}"}
    yield "garbage", bearer("not.a.token")
    yield "wrong key", bearer(tokens.issue((SigningKey("k2", "x" * 40),), as_alice, TTL))
    yield "alg none", bearer(forged({"alg": "none", "typ": "JWT", "kid": "k2"}, claims_of(alice)))
    yield "tampered", bearer(tampered(valid, role="operator"))
    yield "expired", signed(as_alice, now=time.time() - 2 * TTL)
    yield (
        "unknown kid",
        bearer(
            tampered(valid).replace(
                valid.split(".")[0], segment({"alg": "HS256", "typ": "JWT", "kid": "k9"})
            )
        ),
    )
    yield "removed key", signed(as_alice, (REMOVED,))


async def test_a_bad_token_is_refused_and_changes_nothing(shop: Shop, world: World) -> None:
    before = await books(shop, world)
    body = {"userId": world.alice, "itemId": world.item, "quantity": 1}
    for why, headers in bad_tokens(world.alice):
        async with shop.client.request("POST", "/orders", json=body, headers=headers) as response:
            assert response.status == 401, why
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), why
            assert (await response.json())["error"]["code"] == "unauthorized", why
        status, _ = await shop.call("GET", f"/user/{world.alice}/balance", headers=headers)
        assert status == 401, why
    assert await books(shop, world) == before


async def test_a_token_of_the_old_key_still_listed_is_accepted(shop: Shop, world: World) -> None:
    old = signed(tokens.player(world.alice), (OLD,))
    body = {"userId": world.alice, "itemId": world.item, "quantity": 1}
    order = await shop.ok("POST", "/orders", 201, json=body, headers=old)
    assert order["userId"] == world.alice


async def test_a_player_cannot_buy_for_another(shop: Shop, world: World) -> None:
    before = await books(shop, world)
    body = {"userId": world.bob, "itemId": world.item, "quantity": 1}
    status, answer = await shop.call("POST", "/orders", json=body, headers=world.as_alice())
    assert (status, answer["error"]["code"]) == (403, "forbidden")
    assert await books(shop, world) == before


async def test_unknown_fields_are_still_refused(shop: Shop, world: World) -> None:
    body = {"userId": world.alice, "itemId": world.item, "quantity": 1, "totalAmount": 0}
    status, answer = await shop.call("POST", "/orders", json=body, headers=world.as_alice())
    assert (status, answer["error"]["field"]) == (400, "totalAmount")


@pytest.mark.parametrize("what", ["balance", "inventory", "orders", "notifications"])
async def test_a_player_reads_only_their_own_user(shop: Shop, world: World, what: str) -> None:
    await shop.ok("GET", f"/user/{world.alice}/{what}", headers=world.as_alice())
    status, answer = await shop.call("GET", f"/user/{world.bob}/{what}", headers=world.as_alice())
    assert (status, answer["error"]["code"]) == (403, "forbidden")


@pytest.mark.parametrize("suffix", ["", "/status", "/timeline"])
async def test_another_players_order_does_not_exist_for_you(
    shop: Shop, world: World, suffix: str
) -> None:
    body = {"userId": world.bob, "itemId": world.item, "quantity": 1}
    order = await shop.ok("POST", "/orders", 201, json=body, headers=world.as_bob())
    await shop.ok("GET", f"/orders/{order['id']}{suffix}", headers=world.as_bob())

    theirs = await shop.call("GET", f"/orders/{order['id']}{suffix}", headers=world.as_alice())
    unknown = str(uuid.uuid4())
    nobodys = await shop.call("GET", f"/orders/{unknown}{suffix}", headers=world.as_alice())

    assert theirs[0] == nobodys[0] == 404
    assert theirs[1]["error"]["message"] == nobodys[1]["error"]["message"].replace(
        unknown, order["id"]
    )


async def test_an_idempotency_key_belongs_to_its_caller(shop: Shop, world: World) -> None:
    key = {"Idempotency-Key": "the-same-key"}

    async def buy(user: str, headers: dict[str, str]) -> dict[str, Any]:
        body = {"userId": user, "itemId": world.item, "quantity": 1}
        answer: dict[str, Any] = await shop.ok(
            "POST", "/orders", 201, json=body, headers={**headers, **key}
        )
        return answer

    alices = await buy(world.alice, world.as_alice())
    bobs = await buy(world.bob, world.as_bob())
    again = await buy(world.alice, world.as_alice())

    assert alices["id"] != bobs["id"]
    assert (bobs["userId"], again["id"]) == (world.bob, alices["id"])


OPERATOR_ROUTES = {
    ("POST", "/setup-test-data"),
    ("POST", "/users"),
    ("POST", "/items"),
    ("GET", "/orders"),
    ("GET", "/dead-letters"),
    ("POST", "/dead-letters/{letter_id}/replay"),
    ("GET", "/audit"),
    ("POST", "/backups"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/monitor/events"),
    ("GET", "/summary"),
    ("GET", "/payments/failure-rate"),
    ("PUT", "/payments/failure-rate"),
}


async def test_a_player_calls_no_operator_endpoint(shop: Shop, world: World) -> None:
    document = await shop.ok("GET", "/openapi.json")
    operators = [
        (method.upper(), path)
        for method, path, operation in operations(document)
        if operation["x-access"] == "operator"
    ]
    assert set(operators) == OPERATOR_ROUTES
    for method, path in operators:
        concrete = path.replace("{letter_id}", "order-1")
        status, answer = await shop.call(method, concrete, json={}, headers=world.as_alice())
        assert (status, answer["error"]["code"]) == (403, "forbidden"), (method, path)
        status, _ = await shop.call(method, concrete, json={})
        assert status == 401, (method, path)


async def test_the_document_describes_the_scheme_and_who_may_call(shop: Shop) -> None:
    document = await shop.ok("GET", "/openapi.json")
    paths = document["paths"]

    OpenAPIV31SpecValidator(document).validate()
    assert document["components"]["securitySchemes"]["bearer"]["bearerFormat"] == "JWT"
    assert paths["/healthz"]["get"]["security"] == []
    assert {"401", "403"} <= set(paths["/audit"]["get"]["responses"])
    assert {"401", "403", "404"} <= set(paths["/user/{user_id}/balance"]["get"]["responses"])
    assert "403" not in paths["/orders/{order_id}"]["get"]["responses"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/items", "/openapi.json", "/docs", "/"])
async def test_probes_docs_and_the_catalogue_need_no_token(shop: Shop, path: str) -> None:
    async with shop.client.request("GET", path) as response:
        assert response.status == 200


async def test_test_data_comes_with_the_new_players_token(shop: Shop) -> None:
    data = (await shop.ok("POST", "/setup-test-data", headers=OPERATOR))["data"]
    user = data["user"]["id"]

    own = await shop.ok("GET", f"/user/{user}/balance", headers=bearer(data["token"]))

    assert own == {"userId": user, "balance": 50_000}
    assert tokens.verify(KEYS, data["token"], Settings().token_ttl) == tokens.player(user)
