"""OpenAPI 3.1 for the front door, built from the pydantic models that check what it accepts
and describe what it answers, so the docs cannot drift from the code.

A handler says what it takes and what it answers with `documented`, just under its route::

    @routes.post("/orders")
    @documented(
        "Start a purchase",
        body=PlaceOrder,
        headers=IdempotencyHeader,
        responses={201: schemas.Order, 404: ErrorBody, 409: ErrorBody, 503: ErrorBody},
        links={"GetOrder": Link("get_order", {"order_id": "$response.body#/id"})},
    )
    async def place_order(request: web.Request) -> web.Response: ...

- `body`, `query`, `path`, `headers` are pydantic models: the request body, and one parameter
  per field (by alias) of the query, the path and the headers. `path` must name exactly the
  route's placeholders (`{order_id}`). Handlers should validate with the same models.
- `responses` maps each status the handler answers to a pydantic model of its JSON body, or to
  `Media("text/plain")` (or any media type) for a body that is not JSON.
- What the front door itself answers is added: 400, 408, 413 and 415 with a body (see
  `bodies.read_body`), 400 with a query, 404 with path ids or a page's cursor, 429 but for
  probes (see `limits`), all `ErrorBody`.
- `links` (OpenAPI links, from the first 2xx response) lead a client, or a fuzzer, from what an
  operation created to the operations that use it; a link names an operation by its handler's
  function name, which is every operation's `operationId`.
- The handler's docstring becomes the operation's description.

`openapi(app)` describes every route of the app, whichever module added it (HEAD and static
files aside); a route whose handler is not `documented` is left out, and the tests fail on it.
Components come from `pydantic.json_schema.models_json_schema`. `add_docs(app)` serves the spec
at /openapi.json and Swagger UI at /docs from the swagger-ui-bundle-v2 package's files, so the
page works offline.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from swagger_ui_bundle import swagger_ui_path

from sagashop.http.access import ANYONE, SECURED, Access, Where, Who, access_of, allow
from sagashop.http.errors import ErrorBody

OPENAPI_VERSION = "3.1.0"
REF = "#/components/schemas/{model}"
_ATTRIBUTE = "__openapi_operation__"
_PLACEHOLDER = re.compile(r"\{(\w+)")

H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Media:
    """A response body that is not JSON: text, an event stream, a page."""

    media_type: str


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


ResponseBody = type[BaseModel] | Media
"""What one status of an operation answers: a model of its JSON, or another media type."""


@dataclass(frozen=True)
class Operation:
    """What `documented` records about a handler."""

    summary: str
    responses: Mapping[int, ResponseBody]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    links: Mapping[str, Link] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    def all_responses(self) -> dict[int, ResponseBody]:
        """The declared responses and the errors the front door gives for this operation."""
        implied: dict[int, ResponseBody] = {429: ErrorBody}  # past a rate limit (http/limits.py)
        if self.body is not None:  # 408: a body too slow to arrive (bodies.read_body)
            implied |= {400: ErrorBody, 408: ErrorBody, 413: ErrorBody, 415: ErrorBody}
        if self.query is not None:
            implied[400] = ErrorBody
        if self.query is not None and "cursor" in self.query.model_fields:
            implied[404] = ErrorBody  # a cursor that names no page (http/pages.py)
        if self.path is not None:
            implied[404] = ErrorBody
        return dict(sorted((implied | dict(self.responses)).items()))

    def models(self) -> Iterable[tuple[type[BaseModel], JsonSchemaMode]]:
        if self.body is not None:
            yield self.body, "validation"
        for answer in self.all_responses().values():
            if not isinstance(answer, Media):
                yield answer, "serialization"


def documented(
    summary: str,
    *,
    responses: Mapping[int, ResponseBody],
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    path: type[BaseModel] | None = None,
    headers: type[BaseModel] | None = None,
    links: Mapping[str, Link] | None = None,
    tags: Iterable[str] = (),
) -> Callable[[H], H]:
    """Record what a handler takes and answers, for `openapi` (see the module's docstring)."""
    operation = Operation(
        summary, dict(responses), body, query, path, headers, dict(links or {}), tuple(tags)
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
    document = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": components},
    }
    if app.get(SECURED, False):
        _secure(document, [(m, path, access_of(handler)) for m, path, handler, _ in found])
    return document


BEARER = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def _secure(document: dict[str, Any], routes: Iterable[tuple[str, str, Access]]) -> None:
    """The bearer scheme, and on each operation who may call it (`x-access`), its security
    and the 401 and 403 it may answer (another player's order is a 404, already described)."""
    refs, top = models_json_schema([(ErrorBody, "serialization")], ref_template=REF)
    document["components"]["schemas"].update(top.get("$defs", {}))
    document["components"]["securitySchemes"] = {"bearer": BEARER}
    document["security"] = [{"bearer": []}]
    error = {"content": {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}}
    for method, path, access in routes:
        operation = document["paths"][path][method.lower()]
        operation["x-access"] = access.who.value
        if access.who is Who.ANYONE:
            operation["security"] = []
            continue
        responses = operation["responses"]
        responses["401"] = {"description": "No valid bearer token", **error}
        if access.owner is None or access.owner.where is not Where.PATH_ORDER:
            responses["403"] = {"description": _FORBIDDEN[access.who], **error}
        operation["responses"] = dict(sorted(responses.items()))


_FORBIDDEN = {
    Who.OPERATOR: "A player's token: only an operator may",
    Who.PLAYER: "Another player's user: a player acts only for themself",
}


Refs = Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]]


def _components(operations: Iterable[Operation]) -> tuple[Refs, dict[str, Any]]:
    """A `$ref` for each model in each mode it is used in, and the schemas they point to."""
    wanted = list(dict.fromkeys(pair for operation in operations for pair in operation.models()))
    refs, top = models_json_schema(wanted, ref_template=REF)
    return refs, dict(top.get("$defs", {}))


def _operation(
    path: str, handler: Any, operation: Operation, refs: Refs, components: dict[str, Any]
) -> dict[str, Any]:
    described: dict[str, Any] = {"operationId": handler.__name__, "summary": operation.summary}
    if description := inspect.getdoc(handler):
        described["description"] = description
    if operation.tags:
        described["tags"] = list(operation.tags)
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
    schema = model.model_json_schema(ref_template=REF)
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
        response: dict[str, Any] = {"description": _describe(status, answer)}
        if isinstance(answer, Media):
            schema = TypeAdapter(str).json_schema()
            response["content"] = {answer.media_type: {"schema": schema}}
        else:
            schema = refs[(answer, "serialization")]
            response["content"] = {"application/json": {"schema": schema}}
        responses[str(status)] = response
    if operation.links:
        first_success = min(s for s in operation.all_responses() if 200 <= s < 300)
        links = {name: link.to_dict() for name, link in operation.links.items()}
        responses[str(first_success)]["links"] = links
    return responses


def _describe(status: int, answer: ResponseBody) -> str:
    """The response's description: its model's docstring's first line, else the status phrase."""
    doc = None if isinstance(answer, Media) else answer.__doc__  # not inherited, unlike getdoc
    return inspect.cleandoc(doc).splitlines()[0] if doc else HTTPStatus(status).phrase


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

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


@documented("This API's OpenAPI document", responses={200: Spec}, tags=["docs"])
@allow(ANYONE)
async def openapi_document(request: web.Request) -> web.Response:
    """Generated from the handlers' `documented` declarations and their pydantic models."""
    info = request.app[API_INFO]
    return web.json_response(openapi(request.app, info.title, info.version))


@documented("This API's docs page (Swagger UI)", responses={200: Media("text/html")}, tags=["docs"])
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
