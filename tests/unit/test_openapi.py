"""The OpenAPI mechanism on its own: what `documented` records becomes the document, and a
route it cannot describe is left out or refused, never described wrongly."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from aiohttp import web
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel

from sagashop.http.errors import ErrorBody
from sagashop.http.openapi import EVENT_STREAM, Link, Media, Refused, Tag, documented, openapi


class Thing(BaseModel):
    """A thing."""

    id: UUID


class NewThing(BaseModel):
    name: str


class ThingPath(BaseModel):
    thing_id: UUID


def handler(name: str) -> Any:
    """A fresh handler function with this name (the operationId)."""

    async def answer(_request: web.Request) -> web.Response:
        return web.json_response({})

    answer.__name__ = name
    return answer


def spec_of(*routes: tuple[str, str, Any]) -> dict[str, Any]:
    app = web.Application()
    for method, path, route_handler in routes:
        app.router.add_route(method, path, route_handler)
    return openapi(app, "test", "1")


def test_a_documented_route_is_described_from_its_models() -> None:
    create = documented(
        "Make a thing",
        tag=Tag.ITEMS,
        body=NewThing,
        responses={201: Thing},
        links={"Get": Link("get_thing", {"thing_id": "$response.body#/id"})},
    )(handler("make_thing"))
    read = documented("A thing", tag=Tag.ITEMS, path=ThingPath, responses={200: Thing})(
        handler("get_thing")
    )

    spec = spec_of(("POST", "/things", create), ("GET", "/things/{thing_id}", read))

    OpenAPIV31SpecValidator(spec).validate()
    made = spec["paths"]["/things"]["post"]
    assert made["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewThing"
    }
    # 408: a body too slow to come; 429: a caller over its rate limit
    assert sorted(made["responses"]) == ["201", "400", "408", "413", "415", "429"]
    assert made["responses"]["201"]["description"] == "A thing."
    assert made["responses"]["201"]["links"]["Get"]["operationId"] == "get_thing"
    got = spec["paths"]["/things/{thing_id}"]["get"]
    assert got["parameters"] == [
        {
            "name": "thing_id",
            "in": "path",
            "required": True,
            "schema": {"format": "uuid", "type": "string"},
        }
    ]
    assert sorted(got["responses"]) == ["200", "404", "429"]
    assert set(spec["components"]["schemas"]) == {"Thing", "NewThing", "ErrorBody", "ErrorDetail"}


def test_a_body_that_is_not_json_is_described_by_its_media_type() -> None:
    page = documented("A page", tag=Tag.MONITOR, responses={200: Media("text/html", "The page")})(
        handler("page")
    )

    content = spec_of(("GET", "/page", page))["paths"]["/page"]["get"]["responses"]["200"]

    assert content["content"] == {"text/html": {"schema": {"type": "string"}}}
    assert content["description"] == "The page"


def test_an_undocumented_route_is_left_out() -> None:
    documented_one = documented("Listed", tag=Tag.ITEMS, responses={200: ErrorBody})(
        handler("listed")
    )

    spec = spec_of(("GET", "/listed", documented_one), ("GET", "/unlisted", handler("unlisted")))

    assert list(spec["paths"]) == ["/listed"]


@pytest.mark.parametrize("path", ["/things", "/things/{thing_id}/{other}"])
def test_path_parameters_must_match_the_route(path: str) -> None:
    read = documented("A thing", tag=Tag.ITEMS, path=ThingPath, responses={200: Thing})(
        handler("get_thing")
    )

    with pytest.raises(ValueError, match="path parameters"):
        spec_of(("GET", path, read))


def test_each_error_says_why_the_operation_and_the_front_door_refuse() -> None:
    create = documented(
        "Make a thing",
        tag=Tag.ITEMS,
        body=NewThing,
        path=ThingPath,
        responses={201: Thing, 404: Refused("no such thing"), 409: Refused("made already")},
    )(handler("make_thing"))

    spec = spec_of(("POST", "/things/{thing_id}", create))
    responses = spec["paths"]["/things/{thing_id}"]["post"]["responses"]

    OpenAPIV31SpecValidator(spec).validate()
    assert responses["409"]["description"] == "Conflict: made already"
    assert responses["404"]["description"].startswith("Not Found: no such thing; ")
    assert "not a UUID" in responses["404"]["description"]  # the front door's own, after
    assert responses["413"]["description"].startswith("Request Entity Too Large: ")
    assert responses["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


def test_the_document_has_tags_servers_and_no_title_per_property() -> None:
    read = documented("A thing", tag=Tag.ITEMS, path=ThingPath, responses={200: Thing})(
        handler("get_thing")
    )

    spec = spec_of(("GET", "/things/{thing_id}", read))

    assert spec["paths"]["/things/{thing_id}"]["get"]["tags"] == ["items"]
    assert [tag["name"] for tag in spec["tags"]] == ["items"]
    assert spec["servers"][0]["url"] == "/"
    thing = spec["components"]["schemas"]["Thing"]
    assert thing["title"] == "Thing"
    assert "title" not in thing["properties"]["id"]


def test_a_path_that_streams_is_described_by_reference() -> None:
    """openapi-python-client does not follow the reference, so it makes no call that would
    wait for the end of a stream that never ends."""
    events = documented(
        "Events", tag=Tag.MONITOR, responses={200: Media(EVENT_STREAM, "Events, forever")}
    )(handler("events"))

    spec = spec_of(("GET", "/events", events))

    OpenAPIV31SpecValidator(spec).validate()
    assert spec["paths"]["/events"] == {"$ref": "#/components/pathItems/events"}
    described = spec["components"]["pathItems"]["events"]["get"]
    assert EVENT_STREAM in described["responses"]["200"]["content"]
