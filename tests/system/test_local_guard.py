"""Auth off, on 127.0.0.1 (the default): any local caller may do everything, as the original
project's curl examples do, but a browser page of another site may not, neither by sending a
request there (its Origin gives it away) nor by making its own name resolve to 127.0.0.1
(the Host it asks for gives it away)."""

from __future__ import annotations

import pytest

from tests.support import Shop, on_systems

pytestmark = on_systems("sqlite-pubsub", "sqlite-streams")  # the hostile tests, on each transport


def own_port(shop: Shop) -> int:
    port: int = shop.client.port  # type: ignore[attr-defined]
    return port


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another local server's page
        {"Origin": "https://127.0.0.1:{port}"},  # another scheme: another site
        {"Host": "evil.example"},
        {"Host": "evil.example:{port}"},
        {"Host": "evil.example:{port}", "Origin": "http://evil.example:{port}"},
    ],
)
async def test_another_site_is_refused(shop: Shop, headers: dict[str, str]) -> None:
    port = own_port(shop)
    sent = {name: value.format(port=port) for name, value in headers.items()}
    before = await shop.ok("GET", "/summary")

    status, answer = await shop.call("POST", "/setup-test-data", headers=sent)

    assert (status, answer["error"]["code"]) == (403, "forbidden")
    assert await shop.ok("GET", "/summary") == before


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "http://127.0.0.1:{port}"},
        {"Origin": "http://localhost:{port}"},
        {"Origin": "http://[::1]:{port}", "Host": "[::1]:{port}"},
        {"Host": "localhost:{port}"},
    ],
)
async def test_this_server_and_its_loopback_names_are_served(
    shop: Shop, headers: dict[str, str]
) -> None:
    port = own_port(shop)
    sent = {name: value.format(port=port) for name, value in headers.items()}

    answer = await shop.ok("POST", "/setup-test-data", headers=sent)

    assert answer["data"]["token"] is None  # auth is off: nobody to issue one to
    user = answer["data"]["user"]["id"]
    assert await shop.balance(user) == 50_000
