"""The OpenAPI document and the docs page, against the running system: the document is valid
OpenAPI 3.1, names every route, comes from the code's models, and a schema-driven fuzz run
(schemathesis, every check) finds the API doing nothing it does not say."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator

from sagashop.http.bodies import NewItem, NewUser, PlaceOrder
from sagashop.http.openapi import REF
from tests.support import Shop, on_systems

# The document describes the code, not the data: neither the database nor the transport matters.
pytestmark = on_systems("sqlite-pubsub")

FUZZ = [
    "--checks=all",
    "--max-examples=25",  # per operation and phase: about 20 s here, deterministic by the seed
    "--seed=20261130",
    "--workers=1",
    "--request-timeout=30",
    "--generation-database=none",
    "--no-color",
]
FUZZ_TIME_LIMIT = 180.0


def streams(spec: dict[str, Any]) -> list[str]:
    """Paths that answer an endless event stream: a fuzzer would wait out its request timeout
    on every call (their own tests, in test_monitor.py, cover them)."""
    return [
        path
        for path, item in spec["paths"].items()
        for operation in item.values()
        if any(
            "text/event-stream" in answer.get("content", {})
            for answer in operation["responses"].values()
        )
    ]


def client_of(shop: Shop) -> TestClient[Any, Any]:
    return cast(TestClient[Any, Any], shop.client)


@pytest.fixture(scope="module")
async def spec(shop: Shop) -> dict[str, Any]:
    found: dict[str, Any] = await shop.ok("GET", "/openapi.json")
    return found


def app_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route of the app but HEAD (aiohttp adds one to each GET) and
    static files (the docs' and the monitor's)."""
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and not isinstance(route.resource, web.StaticResource)
    }


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    OpenAPIV31SpecValidator(spec).validate()
    assert spec["openapi"].startswith("3.1")


def test_every_route_of_the_app_is_documented(shop: Shop, spec: dict[str, Any]) -> None:
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}

    assert app_routes(client_of(shop).app) - documented == set()
    assert ("post", "/orders") in documented


def test_request_bodies_are_the_models_that_check_them(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for model in (PlaceOrder, NewUser, NewItem):
        assert schemas[model.__name__] == model.model_json_schema(ref_template=REF)


async def test_the_docs_page_is_served_with_its_files_and_no_cdn(shop: Shop) -> None:
    async with shop.client.request("GET", "/docs") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)

    assert "/openapi.json" in page
    assert not re.search(r"https?://", page)
    assert {Path(asset).name for asset in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for asset in assets:
        async with shop.client.request("GET", asset) as response:
            assert (response.status, asset.startswith("/docs/assets/")) == (200, True), asset
            assert await response.read(), asset


async def test_a_schema_driven_fuzz_run_finds_nothing(
    shop: Shop, spec: dict[str, Any], tmp_path: Path
) -> None:
    """Every phase (coverage, fuzzing, and stateful runs that follow the document's links from
    new users, items and orders): no 500, every status and body as documented, bad input
    refused, good input accepted, 405 with `Allow` for a method a path does not take."""
    url = str(client_of(shop).make_url("/openapi.json"))
    fuzzer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        url,
        *FUZZ,
        *(f"--exclude-path={path}" for path in streams(spec)),
        cwd=tmp_path,  # its caches go there, not into the work tree
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(fuzzer.communicate(), FUZZ_TIME_LIMIT)
    finally:
        if fuzzer.returncode is None:
            fuzzer.kill()
            await fuzzer.wait()

    assert fuzzer.returncode == 0, output.decode(errors="replace")[-8000:]
