"""Bearer tokens for the front door: short-lived JWTs signed with HS256 under a named key.

Keys come as `AUTH_KEYS="k2:secret,k1:secret"`: the first signs, every one listed verifies,
and each token names its key in its `kid` header. So a key rotates without downtime: put the
new one first, wait for the old tokens to expire (they live `token_ttl` seconds), then drop the
old one. The algorithm is pinned on both sides: a token saying `alg: none`, or RS256 to make
a verifier use a public key as an HMAC secret, is refused before its signature is looked at.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

import jwt

from sagashop.errors import SagashopError

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
"""RFC 7518, 3.2: an HS256 key at least as long as the hash (256 bits)."""
OPERATOR_SUBJECT = "operator"
ANONYMOUS = "anonymous"
"""Who calls when auth is off: everyone, as one caller."""


class Role(StrEnum):
    PLAYER = "player"
    OPERATOR = "operator"


class InvalidToken(SagashopError):
    """The token is missing, malformed, signed with a key not listed, expired or otherwise
    not one this system issued; the message says which, for the caller."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: str

    def __repr__(self) -> str:  # a key must never reach a log through a repr
        return f"SigningKey(kid={self.kid!r}, secret=…)"


@dataclass(frozen=True)
class Claims:
    """Who a verified token speaks for."""

    subject: str
    role: Role

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR


def parse_keys(value: str) -> tuple[SigningKey, ...]:
    """`k2:secret,k1:secret` → the keys, the signing one first; ValueError names the fault
    (never the secret)."""
    keys = tuple(_parse_key(part.strip()) for part in value.split(",") if part.strip())
    kids = [key.kid for key in keys]
    if len(set(kids)) != len(kids):
        raise ValueError("a key id is listed twice")
    return keys


def _parse_key(part: str) -> SigningKey:
    kid, colon, secret = part.partition(":")
    if not colon or not kid or not secret:
        raise ValueError(f"each key is KID:SECRET (the one for {kid or '?'!r} is not)")
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"key {kid!r} is shorter than {MIN_SECRET_BYTES} bytes")
    return SigningKey(kid, secret)


def issue(
    keys: tuple[SigningKey, ...],
    claims: Claims,
    ttl: float,
    now: float | None = None,
) -> str:
    """A token for `claims`, signed with the first key, valid for `ttl` seconds from `now`."""
    if not keys:
        raise ValueError("no AUTH_KEYS to sign with")
    issued = int(time.time() if now is None else now)
    payload = {
        "sub": claims.subject,
        "role": str(claims.role),
        "iat": issued,
        "exp": issued + int(ttl),
    }
    return jwt.encode(payload, keys[0].secret, algorithm=ALGORITHM, headers={"kid": keys[0].kid})


def player(user_id: str) -> Claims:
    return Claims(str(UUID(user_id)), Role.PLAYER)


OPERATOR = Claims(OPERATOR_SUBJECT, Role.OPERATOR)


SKEW = 60
"""Seconds a token's lifetime may exceed the one this system issues (clocks drift)."""


def verify(keys: tuple[SigningKey, ...], token: str, ttl: float) -> Claims:
    """The claims of a token one of `keys` signed, still valid, that lives no longer than
    tokens live here (`ttl`, `--token-ttl`): one made to live for years, with a key that
    leaked, is refused as well. InvalidToken otherwise."""
    try:
        key = _key_named(keys, jwt.get_unverified_header(token).get("kid"))
        payload = jwt.decode(
            token,
            key.secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "role", "iat", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("the token has expired") from None
    except jwt.InvalidTokenError as error:
        raise InvalidToken(f"the token is not valid: {error}") from None
    if _lifetime(payload) > ttl + SKEW:
        raise InvalidToken(f"the token lives longer than tokens of this system ({ttl:g}s)")
    return _claims(payload)


def _lifetime(payload: dict[str, Any]) -> float:
    issued, expires = payload["iat"], payload["exp"]
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in (issued, expires)):
        raise InvalidToken("the token's iat and exp are not times")
    return float(expires - issued)


def _key_named(keys: tuple[SigningKey, ...], kid: Any) -> SigningKey:
    for key in keys:
        if key.kid == kid:
            return key
    raise InvalidToken("the token names no key this system knows")


def _claims(payload: dict[str, Any]) -> Claims:
    try:
        role = Role(payload["role"])
    except ValueError:
        raise InvalidToken("the token's role is neither player nor operator") from None
    if role is Role.OPERATOR:
        return OPERATOR
    try:
        return player(str(payload["sub"]))
    except ValueError:
        raise InvalidToken("a player token's subject is not a user id") from None
