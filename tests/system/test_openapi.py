"""The OpenAPI document and the docs page, against the running system: the document is valid
OpenAPI 3.1, names every route, comes from the code's models, describes every operation, field
and error, tags every operation, has examples its models accept, and a schema-driven fuzz run
(schemathesis, every check) finds the API doing nothing it does not say."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel

from sagashop.http.bodies import NewItem, NewUser, PlaceOrder
from sagashop.http.openapi import REF, DocumentSchema, documented_routes, operation_of
from tests.support import Shop, on_systems, operations

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
        for _, path, operation in operations(spec)
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
    documented = {(method, path) for method, path, _ in operations(spec)}

    assert app_routes(client_of(shop).app) - documented == set()
    assert ("post", "/orders") in documented


def test_request_bodies_are_the_models_that_check_them(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for model in (PlaceOrder, NewUser, NewItem):
        assert schemas[model.__name__] == model.model_json_schema(
            ref_template=REF, schema_generator=DocumentSchema
        )


def models_of(app: web.Application) -> dict[str, type[BaseModel]]:
    """Every model an operation of the app takes or answers, by its schema's name."""
    found = {}
    for *_, handler in documented_routes(app):
        operation = operation_of(handler)
        assert operation is not None
        found |= {model.__name__: model for model, _ in operation.models()}
    return found


def json_media(operation: dict[str, Any]) -> list[dict[str, Any]]:
    """The JSON request body's and every JSON answer's schema (a `$ref`) of an operation."""
    answers = [*operation["responses"].values(), operation.get("requestBody", {})]
    return [
        a["content"]["application/json"]["schema"]
        for a in answers
        if "application/json" in a.get("content", {})
    ]


def test_every_example_is_accepted_by_the_model_it_documents(
    shop: Shop, spec: dict[str, Any]
) -> None:
    models = models_of(client_of(shop).app)
    schemas = spec["components"]["schemas"]
    with_examples = {name: schema for name, schema in schemas.items() if "examples" in schema}

    assert set(with_examples) <= set(models)
    for name, schema in with_examples.items():
        for example in schema["examples"]:
            models[name].model_validate_json(json.dumps(example))


def test_every_json_body_and_answer_has_an_example(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    without = {
        (method, path, media["$ref"])
        for method, path, operation in operations(spec)
        for media in json_media(operation)
        if not schemas[media["$ref"].rpartition("/")[2]].get("examples")
    }

    assert without == set()


def test_every_operation_and_field_is_described_and_tagged(spec: dict[str, Any]) -> None:
    tags = {tag["name"] for tag in spec["tags"] if tag["description"]}
    undescribed = [
        (method, path)
        for method, path, operation in operations(spec)
        if not operation.get("description")
        or len(operation.get("tags", [])) != 1
        or not set(operation["tags"]) <= tags
    ]
    fields = [
        f"{name}.{field}"
        for name, schema in spec["components"]["schemas"].items()
        for field, described in schema.get("properties", {}).items()
        if not described.get("description")
    ]

    assert undescribed == []
    assert fields == []
    assert tags == {"orders", "players", "items", "operations", "monitor"}
    assert spec["servers"]


def test_each_error_is_described_for_its_operation(spec: dict[str, Any]) -> None:
    """Not the status phrase alone: "Not Found: no user with that id; …"."""
    bare = [
        (method, path, status)
        for method, path, operation in operations(spec)
        for status, answer in operation["responses"].items()
        if int(status) >= 400 and ": " not in answer["description"]
    ]
    balance = spec["paths"]["/user/{user_id}/balance"]["get"]["responses"]

    assert bare == []
    assert balance["404"]["description"].startswith("Not Found: no user with that id")


def test_no_property_has_a_title_and_every_model_its_name(spec: dict[str, Any]) -> None:
    """A generator makes a class of each titled property ("Totalamount")."""
    text = json.dumps(spec["paths"])
    schemas = spec["components"]["schemas"]

    assert '"title"' not in text
    assert all(schema.get("title") == name for name, schema in schemas.items())
    assert all(
        "title" not in described
        for schema in schemas.values()
        for described in schema.get("properties", {}).values()
    )


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
