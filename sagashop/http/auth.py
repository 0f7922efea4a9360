"""The front door's one gate: who is calling, and may they call this route.

With auth on, `authorize` reads the bearer token (`sagashop.tokens`) and the route's declared
access (`sagashop.http.access`): a missing or invalid token is a 401, an operator route called
by a player a 403, another player's user a 403 and another player's order a 404. With auth off
(the default on a loopback address) every caller is "anonymous" and may do everything, so
`origin_guard` refuses what a browser sends on behalf of another site: a foreign `Origin`
(cross-site request forgery) or a foreign `Host` (DNS rebinding: evil.example resolving to
127.0.0.1 makes a page of that site same-origin with this server).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from yarl import URL

from sagashop.config import Settings, auth_enabled, auth_warning, check_auth
from sagashop.errors import CallerError, Forbidden, NotFound
from sagashop.http.access import SECURED, Access, Owner, Where, Who, access_of
from sagashop.http.bodies import path_id, read_body
from sagashop.http.context import ask
from sagashop.http.errors import error_response
from sagashop.names import Request, ServiceName
from sagashop.tokens import ANONYMOUS, Claims, InvalidToken, SigningKey, issue, player, verify

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})


class Unauthorized(CallerError):
    """No token, or one this system did not issue, or one that expired."""

    status = 401
    code = "unauthorized"


@dataclass(frozen=True)
class Auth:
    """What the gate and the token-issuing endpoint need."""

    keys: tuple[SigningKey, ...]
    ttl: float


AUTH = web.AppKey("auth", Auth)
CALLER = web.RequestKey("caller", Claims)


def add_auth(app: web.Application, settings: Settings) -> None:
    """The gate for these settings, first in line after the error mapping."""
    check_auth(settings)
    enabled = auth_enabled(settings)
    app[SECURED] = enabled
    if enabled:
        app[AUTH] = Auth(settings.auth_keys, settings.token_ttl)
        app.middlewares.append(authorize)
        return
    if warning := auth_warning(settings):
        log.warning("%s", warning)
    app.middlewares.append(origin_guard(settings.host))


def caller_name(request: web.Request) -> str:
    """Whose request this is, for scoping what it names (an Idempotency-Key)."""
    claims = request.get(CALLER)
    return ANONYMOUS if claims is None else claims.subject


def token_for(request: web.Request, user_id: str) -> str | None:
    """A player token for `user_id` when an operator asks (auth on); None otherwise."""
    claims = request.get(CALLER)
    if claims is None or not claims.is_operator:
        return None
    auth = request.app[AUTH]
    return issue(auth.keys, player(user_id), auth.ttl)


@web.middleware
async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
    access = _access(request)
    if access.who is Who.ANYONE:
        return await handler(request)
    try:
        claims = _authenticate(request, request.app[AUTH])
    except Unauthorized as error:  # RFC 6750, 3: a 401 names the scheme it wants
        response = error_response(error.status, error.to_dict())
        response.headers["WWW-Authenticate"] = 'Bearer realm="sagashop"'
        return response
    request[CALLER] = claims
    if not claims.is_operator:
        await _check_player(request, access, claims)
    return await handler(request)


def _access(request: web.Request) -> Access:
    """The route's declaration; an unknown path or method passes, to get its 404 or 405."""
    match = request.match_info
    if match.http_exception is not None or isinstance(match.route.resource, web.StaticResource):
        return Access(Who.ANYONE)
    return access_of(match.handler)


def _authenticate(request: web.Request, auth: Auth) -> Claims:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer TOKEN (`run.py token --user ID`)")
    try:
        return verify(auth.keys, token.strip(), auth.ttl)
    except InvalidToken as error:
        raise Unauthorized(str(error)) from None


async def _check_player(request: web.Request, access: Access, claims: Claims) -> None:
    if access.who is Who.OPERATOR or access.owner is None:
        raise Forbidden("only an operator may do this")
    if await _owner(request, access.owner) != claims.subject:
        raise Forbidden("a player may act only for themself")


async def _owner(request: web.Request, owner: Owner) -> str:
    """The user the request is about; another player's order is one that does not exist."""
    if owner.where is Where.PATH_USER:
        return path_id(request, owner.name)
    if owner.where is Where.BODY_USER and owner.body is not None:
        return str(getattr(await read_body(request, owner.body), owner.name))
    order_id = path_id(request, owner.name)
    order = await ask(request, ServiceName.ORDER, Request.GET_ORDER, order_id=order_id)
    if order["userId"] != request[CALLER].subject:
        raise NotFound(f"no order with id {order_id}")
    return str(order["userId"])


def origin_guard(host: str) -> Middleware:
    """Refuse a request whose Host names another server, or whose Origin is another site.

    Allowed: this server's own name (unless it binds every address, where any name is its
    own) and the loopback forms; an Origin must also have the port of the Host asked for."""
    names = None if host in WILDCARDS else LOOPBACK_NAMES | {host.strip("[]").lower()}

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        asked = _url(f"{request.scheme}://{request.host}")
        if asked is None or (names is not None and asked.host not in names):
            raise Forbidden(f"this server does not answer to the host {request.host!r}")
        origin = request.headers.get("Origin")
        if origin is not None and not _same_site(_url(origin), asked, names):
            raise Forbidden(f"requests from {origin!r} are refused: it is another site")
        return await handler(request)

    return guard


def _same_site(origin: URL | None, asked: URL, names: frozenset[str] | None) -> bool:
    """Same host and port; on loopback the same scheme too (behind a proxy that ends TLS, a
    page's https origin asks this server over http)."""
    if origin is None or origin.host is None or origin.port != asked.port:
        return False
    if names is not None and origin.scheme != asked.scheme:
        return False
    return origin.host in (names or {asked.host})


def _url(text: str) -> URL | None:
    try:
        url = URL(text)
    except ValueError:
        return None
    return url if url.host else None
