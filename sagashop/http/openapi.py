"""OpenAPI 3.1 for the front door, built from the pydantic models that check what it accepts
and describe what it answers, so the docs cannot drift from the code.

A handler says what it takes and what it answers with `documented`, just under its route::

    @routes.post("/orders")
    @documented(
        "Start a purchase",
        tag=Tag.ORDERS,
        body=PlaceOrder,
        headers=IdempotencyHeader,
        responses={201: schemas.Order, 404: Refused("no user or no item with that id")},
        links={"GetOrder": Link("get_order", {"order_id": "$response.body#/id"})},
    )
    async def place_order(request: web.Request) -> web.Response: ...

- `tag` is the resource the operation belongs to (`Tag`; the document lists them with
  `TAG_DESCRIPTIONS`).
- `body`, `query`, `path`, `headers` are pydantic models: the request body, and one parameter
  per field (by alias) of the query, the path and the headers. `path` must name exactly the
  route's placeholders (`{order_id}`). Handlers should validate with the same models.
- `responses` maps each status the handler answers to a pydantic model of its JSON body (its
  docstring's first line describes it), to `Refused("why")` for an error (an `ErrorBody`), or
  to `Media("text/plain", "what it is")` for a body that is not JSON.
- What the front door itself answers is added, its reasons after the operation's own for the
  same status: 400, 408, 413 and 415 with a body (see `bodies.read_body`), 400 with a query,
  404 with path ids or a page's cursor, 429 but for probes (see `limits`), all `ErrorBody`;
  401 and 403 when auth is on (see `access`).
- `links` (OpenAPI links, from the first 2xx response) lead a client, or a fuzzer, from what an
  operation created to the operations that use it; a link names an operation by its handler's
  function name, which is every operation's `operationId`.
- The handler's docstring becomes the operation's description.

Schemas come from `pydantic.json_schema.models_json_schema`, with no title per property
(`DocumentSchema`); a model's `json_schema_extra` gives its `examples`. A path that answers an
event stream, which never ends, is described under `components.pathItems` and referred to from
`paths` (see `_streams_by_reference`).

`openapi(app)` describes every route of the app, whichever module added it (HEAD and static
files aside); a route whose handler is not `documented` is left out, and the tests fail on it.
`add_docs(app)` serves the spec at /openapi.json and Swagger UI at /docs from the
swagger-ui-bundle-v2 package's files, so the page works offline.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema
from pydantic_core import CoreSchema
from swagger_ui_bundle import swagger_ui_path

from sagashop.http.access import ANYONE, SECURED, Access, Where, Who, access_of, allow
from sagashop.http.errors import ErrorBody

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
EVENT_STREAM = "text/event-stream"
_ATTRIBUTE = "__openapi_operation__"
_PLACEHOLDER = re.compile(r"\{(\w+)")

H = TypeVar("H", bound=Callable[..., Any])


class Tag(StrEnum):
    """The resource an operation belongs to: a generated client groups its calls by it."""

    ORDERS = "orders"
    PLAYERS = "players"
    ITEMS = "items"
    OPERATIONS = "operations"
    MONITOR = "monitor"


TAG_DESCRIPTIONS = {
    Tag.ORDERS: "Purchases: start one, follow it to its end, list the latest",
    Tag.PLAYERS: "Players: create one, and read what is theirs (balance, bag, orders, news)",
    Tag.ITEMS: "The catalogue: create an item, list them with their stock",
    Tag.OPERATIONS: "For operators: probes, metrics, audit, backups, dead letters, test data, "
    "test controls and this document",
    Tag.MONITOR: "The saga monitor: its page, its live feed and its counters",
}


class DocumentSchema(GenerateJsonSchema):
    """JSON Schema with no title per property ("Totalamount"): generators make a class of each
    titled property. Models keep their titles, their class names."""

    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False


@dataclass(frozen=True)
class Media:
    """A response body that is not JSON (text, an event stream, a page), and what it is."""

    media_type: str
    description: str


@dataclass(frozen=True)
class Refused:
    """An error status of an operation and why it is answered; its body is an `ErrorBody`
    (or `body`, for an error that says more)."""

    why: str
    body: type[BaseModel] = ErrorBody

    def also(self, why: str) -> Refused:
        return Refused(f"{self.why}; {why}", self.body)


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: `operation` (a handler's name) with parameters taken from a response,
    as runtime expressions (`$response.body#/id`); `body` fills the target's request body."""

    operation: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        link: dict[str, Any] = {"operationId": self.operation}
        if self.parameters:
            link["parameters"] = dict(self.parameters)
        if self.body is not None:
            link["requestBody"] = dict(self.body)
        return link


ResponseBody = type[BaseModel] | Media | Refused
"""What one status of an operation answers: a model of its JSON, an error and why, or another
media type."""

BAD_BODY = (
    "the body is not JSON, not an object, or a field is missing, extra or invalid: `field` names it"
)
BAD_QUERY = "a query parameter is invalid: `field` names it"
NO_PAGE = "the cursor names no page"
BAD_PATH_ID = "an id in the path of another form (not a UUID, say) names nothing"


@dataclass(frozen=True)
class Operation:
    """What `documented` records about a handler."""

    summary: str
    tag: Tag
    responses: Mapping[int, ResponseBody]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    links: Mapping[str, Link] = field(default_factory=dict)

    def implied(self) -> dict[int, list[str]]:
        """Why the front door itself may refuse this operation, by status."""
        reasons: dict[int, list[str]] = {429: ["past a rate limit: wait as Retry-After says"]}
        if self.body is not None:
            reasons[400] = [BAD_BODY]
            reasons[408] = ["the body did not all arrive within --body-timeout (10 s by default)"]
            reasons[413] = ["the body is larger than the front door takes (16 KiB)"]
            reasons[415] = ["the body is not sent as application/json"]
        if self.query is not None:
            reasons.setdefault(400, []).append(BAD_QUERY)
        if self.query is not None and "cursor" in self.query.model_fields:
            reasons.setdefault(404, []).append(NO_PAGE)
        if self.path is not None:
            reasons.setdefault(404, []).append(BAD_PATH_ID)
        return reasons

    def all_responses(self) -> dict[int, ResponseBody]:
        """The declared responses and the errors the front door gives for this operation."""
        answers = dict(self.responses)
        for status, reasons in self.implied().items():
            for why in reasons:
                answers[status] = _refused_also(answers.get(status), why)
        return dict(sorted(answers.items()))

    def models(self) -> Iterable[tuple[type[BaseModel], JsonSchemaMode]]:
        if self.body is not None:
            yield self.body, "validation"
        for answer in self.all_responses().values():
            if not isinstance(answer, Media):
                yield _model(answer), "serialization"


def _refused_also(answer: ResponseBody | None, why: str) -> ResponseBody:
    if answer is None:
        return Refused(why)
    if isinstance(answer, Refused):
        return answer.also(why)
    raise ValueError(f"a status the front door refuses with is declared as {answer}")


def _model(answer: type[BaseModel] | Refused) -> type[BaseModel]:
    return answer.body if isinstance(answer, Refused) else answer


def documented(
    summary: str,
    *,
    tag: Tag,
    responses: Mapping[int, ResponseBody],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    path: type[BaseModel] | None = None,
    headers: type[BaseModel] | None = None,
    links: Mapping[str, Link] | None = None,
) -> Callable[[H], H]:
    """Record what a handler takes and answers, for `openapi` (see the module's docstring)."""
    operation = Operation(
        summary, tag, dict(responses), body, query, path, headers, dict(links or {})
    )

    def record(handler: H) -> H:
        setattr(handler, _ATTRIBUTE, operation)
        return handler

    return record


def operation_of(handler: Any) -> Operation | None:
    """What `documented` recorded about this handler, if anything."""
    found = getattr(handler, _ATTRIBUTE, None)
    return found if isinstance(found, Operation) else None


def documented_routes(app: web.Application) -> Iterable[tuple[str, str, Any]]:
    """(method, path, handler) of every route the spec should describe: not HEAD (aiohttp adds
    one to each GET), not static files."""
    for route in app.router.routes():
        resource = route.resource
        if route.method in ("HEAD", "*") or resource is None:
            continue
        if isinstance(resource, web.StaticResource):
            continue
        yield route.method, resource.canonical, route.handler


SERVERS: list[JsonValue] = [
    {"url": "/", "description": "This server: the paths are relative to the document's"}
]


def openapi(app: web.Application, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented route of `app`."""
    found = [
        (method, path, handler, operation)
        for method, path, handler in documented_routes(app)
        if (operation := operation_of(handler)) is not None
    ]
    refs, components = _components(operation for *_, operation in found)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler, operation in found:
        paths.setdefault(path, {})[method.lower()] = _operation(
            path, handler, operation, refs, components
        )
    used = {operation.tag for *_, operation in found}
    document = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "servers": SERVERS,
        "tags": [{"name": tag, "description": TAG_DESCRIPTIONS[tag]} for tag in Tag if tag in used],
        "paths": paths,
        "components": {"schemas": components},
    }
    if app.get(SECURED, False):
        _secure(document, [(m, path, access_of(handler)) for m, path, handler, _ in found])
    _streams_by_reference(document)
    return document


BEARER = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
NO_TOKEN = "no bearer token, or one this system did not issue, or one that expired"
_FORBIDDEN = {
    Who.OPERATOR: "a player's token: only an operator may",
    Who.PLAYER: "another player's user: a player acts only for themself",
}


def _secure(document: dict[str, Any], routes: Iterable[tuple[str, str, Access]]) -> None:
    """The bearer scheme, and on each operation who may call it (`x-access`), its security
    and the 401 and 403 it may answer (another player's order is a 404, already described)."""
    document["components"]["securitySchemes"] = {"bearer": BEARER}
    document["security"] = [{"bearer": []}]
    for method, path, access in routes:
        operation = document["paths"][path][method.lower()]
        operation["x-access"] = access.who.value
        if access.who is Who.ANYONE:
            operation["security"] = []
            continue
        responses = operation["responses"]
        responses["401"] = _error_response(401, [NO_TOKEN])
        if access.owner is None or access.owner.where is not Where.PATH_ORDER:
            _add_reason(responses, 403, _FORBIDDEN[access.who])
        operation["responses"] = dict(sorted(responses.items()))


def _add_reason(responses: dict[str, Any], status: int, why: str) -> None:
    """One more reason for an error status (an operation's own 403 and auth's, say)."""
    if str(status) in responses:
        responses[str(status)]["description"] += f"; {why}"
    else:
        responses[str(status)] = _error_response(status, [why])


def _error_response(status: int, reasons: list[str]) -> dict[str, Any]:
    return {
        "description": _refusal(status, "; ".join(reasons)),
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}},
    }


def _streams_by_reference(document: dict[str, Any]) -> None:
    """A path that answers an event stream is moved to `components.pathItems` and referred to.

    A stream never ends, and a client generated by openapi-python-client reads a whole body
    before it returns, so the call it would make for one would never return; it does not follow
    a path item's `$ref`, so it makes none. Readers, Swagger UI and schemathesis follow it."""
    moved: dict[str, Any] = {}
    for path, item in document["paths"].items():
        streaming = [op for op in item.values() if _answers(op, EVENT_STREAM)]
        if streaming:
            name = streaming[0]["operationId"]
            moved[name] = item
            document["paths"][path] = {"$ref": f"#/components/pathItems/{name}"}
    if moved:
        document["components"]["pathItems"] = moved


def _answers(operation: dict[str, Any], media_type: str) -> bool:
    return any(
        media_type in answer.get("content", {}) for answer in operation["responses"].values()
    )


Refs = Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]]


def _components(operations: Iterable[Operation]) -> tuple[Refs, dict[str, Any]]:
    """A `$ref` for each model in each mode it is used in, and the schemas they point to."""
    wanted = list(dict.fromkeys(pair for operation in operations for pair in operation.models()))
    wanted.append((ErrorBody, "serialization"))  # what 401 and 403 answer when auth is on
    refs, top = models_json_schema(wanted, ref_template=REF, schema_generator=DocumentSchema)
    return refs, dict(top.get("$defs", {}))


def _operation(
    path: str, handler: Any, operation: Operation, refs: Refs, components: dict[str, Any]
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "operationId": handler.__name__,
        "summary": operation.summary,
        "tags": [operation.tag.value],
    }
    if description := inspect.getdoc(handler):
        described["description"] = description
    parameters = [
        *_parameters(operation.path, "path", components),
        *_parameters(operation.query, "query", components),
        *_parameters(operation.headers, "header", components),
    ]
    _check_placeholders(path, operation.path)
    if parameters:
        described["parameters"] = parameters
    if operation.body is not None:
        schema = refs[(operation.body, "validation")]
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    described["responses"] = _responses(operation, refs)
    return described


def _check_placeholders(path: str, model: type[BaseModel] | None) -> None:
    """A path model must name exactly the route's placeholders: a drift is a bug, found early."""
    named = set(_PLACEHOLDER.findall(path))
    declared = {_name(key, info) for key, info in model.model_fields.items()} if model else set()
    if named != declared:
        raise ValueError(f"{path}: path parameters {sorted(named)}, documented {sorted(declared)}")


def _parameters(
    model: type[BaseModel] | None, where: str, components: dict[str, Any]
) -> list[dict[str, Any]]:
    """One OpenAPI parameter per field of `model` (its schema's `$defs` go to the components)."""
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF, schema_generator=DocumentSchema)
    components.update(schema.get("$defs", {}))
    required = set(schema.get("required", ()))
    parameters = []
    for key, info in model.model_fields.items():
        name = _name(key, info)
        field_schema = _never_null(schema["properties"][name])
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in required,
            "schema": field_schema,
        }
        if info.description:
            parameter["description"] = info.description
        parameters.append(parameter)
    return parameters


def _never_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter is said by leaving it out: `str | None` is described as a string."""
    choices = [choice for choice in schema.get("anyOf", ()) if choice != {"type": "null"}]
    if len(choices) != 1:
        return dict(schema)
    rest = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
    return {**choices[0], **rest}


def _name(key: str, info: Any) -> str:
    return str(info.alias or key)


def _responses(operation: Operation, refs: Refs) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, answer in operation.all_responses().items():
        if isinstance(answer, Media):
            schema = TypeAdapter(str).json_schema()
            response = {
                "description": answer.description,
                "content": {answer.media_type: {"schema": schema}},
            }
        else:
            schema = refs[(_model(answer), "serialization")]
            response = {
                "description": _describe(status, answer),
                "content": {"application/json": {"schema": schema}},
            }
        responses[str(status)] = response
    if operation.links:
        first_success = min(s for s in operation.all_responses() if 200 <= s < 300)
        links = {name: link.to_dict() for name, link in operation.links.items()}
        responses[str(first_success)]["links"] = links
    return responses


def _describe(status: int, answer: type[BaseModel] | Refused) -> str:
    """An error's status and why; an answer's model's docstring's first line."""
    if isinstance(answer, Refused):
        return _refusal(status, answer.why)
    doc = answer.__doc__  # not inherited, unlike getdoc
    if not doc:
        raise ValueError(f"{answer.__name__} answers {status}: its docstring describes it")
    return inspect.cleandoc(doc).splitlines()[0]


def _refusal(status: int, why: str) -> str:
    return f"{HTTPStatus(status).phrase}: {why}"


DOCS_ASSETS = "/docs/assets"
_DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}: API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true}});
  </script>
</body>
</html>
"""


@dataclass(frozen=True)
class ApiInfo:
    title: str
    version: str


API_INFO = web.AppKey("api_info", ApiInfo)


class Spec(BaseModel):
    """The OpenAPI 3.1 document of this API (see https://spec.openapis.org/oas/v3.1.0)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "openapi": OPENAPI_VERSION,
                    "info": {"title": "sagashop", "version": "0.1.0"},
                    "servers": SERVERS,
                    "tags": [{"name": "items", "description": TAG_DESCRIPTIONS[Tag.ITEMS]}],
                    "paths": {},
                }
            ]
        },
    )

    openapi: str = Field(description="the OpenAPI version: 3.1.0")
    info: dict[str, Any] = Field(description="the API's title and version")
    paths: dict[str, Any] = Field(description="every operation, by path and method")


@documented("This API's OpenAPI document", tag=Tag.OPERATIONS, responses={200: Spec})
@allow(ANYONE)
async def openapi_document(request: web.Request) -> web.Response:
    """Generated from the handlers' `documented` declarations and their pydantic models: tags
    by resource, an example of every body, a description of every field and of each error."""
    info = request.app[API_INFO]
    return web.json_response(openapi(request.app, info.title, info.version))


@documented(
    "This API's docs page (Swagger UI)",
    tag=Tag.OPERATIONS,
    responses={200: Media("text/html", "Swagger UI, showing /openapi.json")},
)
@allow(ANYONE)
async def docs_page(request: web.Request) -> web.Response:
    """Served with its scripts and styles by this process: no CDN, works offline."""
    return web.Response(text=docs_page_html(request.app[API_INFO].title), content_type="text/html")


def docs_page_html(title: str) -> str:
    """The docs page (its inline script's hash is in its Content-Security-Policy)."""
    return _DOCS_PAGE.format(title=title, assets=DOCS_ASSETS)


def add_docs(app: web.Application, title: str, version: str) -> None:
    """Serve the spec at /openapi.json and Swagger UI at /docs (its files under /docs/assets)."""
    app[API_INFO] = ApiInfo(title, version)
    app.router.add_get("/openapi.json", openapi_document)
    app.router.add_get("/docs", docs_page)
    app.router.add_static(DOCS_ASSETS, Path(str(swagger_ui_path)))
