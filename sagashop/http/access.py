"""Who may call each route, declared just under its `documented`, read by one middleware
(`sagashop.http.auth`) and by the OpenAPI document, so the rule, its enforcement and its docs
are one declaration::

    @routes.get("/user/{user_id}/balance")
    @documented("The user's balance", path=UserPath, responses={...})
    @allow(OWN_USER_IN_PATH)
    async def get_balance(request: web.Request) -> web.Response: ...

A route that declares nothing is for operators only: a new route is closed until someone
decides otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any, TypeVar

from aiohttp import web

from sagashop.http.bodies import Body

_ATTRIBUTE = "__access__"
SECURED = web.AppKey("secured", bool)
"""Whether the app checks tokens: the OpenAPI document then describes the scheme and the
401s and 403s (with auth off it describes none, since none is ever answered)."""

H = TypeVar("H", bound=Callable[..., Any])


class Who(Enum):
    ANYONE = "anyone"
    """No token: probes, docs, the catalogue."""
    PLAYER = "player"
    """A player, for what is theirs (see `Owner`), or an operator."""
    OPERATOR = "operator"


class Where(Enum):
    """Where a player request names the user it is about (see `Owner`)."""

    PATH_USER = auto()
    BODY_USER = auto()
    PATH_ORDER = auto()


@dataclass(frozen=True)
class Owner:
    """Where the user a player request is about is named.

    `path_user`: a path parameter (someone else's → 403); `body_user`: a field of the body
    (`body` validates it first; someone else's → 403); `order`: a path parameter naming an order,
    whose user is looked up (someone else's → 404, as if it did not exist: an order id must not
    tell a stranger that the order exists)."""

    where: Where
    name: str
    body: type[Body] | None = None


@dataclass(frozen=True)
class Access:
    who: Who
    owner: Owner | None = None


ANYONE = Access(Who.ANYONE)
OPERATOR = Access(Who.OPERATOR)
OWN_USER_IN_PATH = Access(Who.PLAYER, Owner(Where.PATH_USER, "user_id"))
OWN_ORDER_IN_PATH = Access(Who.PLAYER, Owner(Where.PATH_ORDER, "order_id"))


def own_user_in_body(body: type[Body], field: str) -> Access:
    return Access(Who.PLAYER, Owner(Where.BODY_USER, field, body))


def allow(access: Access) -> Callable[[H], H]:
    """Declare who may call this handler (see the module's docstring)."""

    def record(handler: H) -> H:
        setattr(handler, _ATTRIBUTE, access)
        return handler

    return record


def access_of(handler: Any) -> Access:
    """What `allow` declared for this handler; operators only if nothing was."""
    found = getattr(handler, _ATTRIBUTE, None)
    return found if isinstance(found, Access) else OPERATOR
