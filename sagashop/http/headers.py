"""The security headers of every answer, set in one place just before each is sent.

An `on_response_prepare` hook rather than a middleware: it also sees the answers a middleware
cannot change, the event stream (sent by its handler as it goes) and static files. JSON gets a
policy that allows nothing (a JSON answer opened as a page runs nothing, and no page frames
it); the monitor page and the docs page get one that allows their own files only. Swagger UI
starts from one inline script, allowed by its hash, and sets inline styles, hence
'unsafe-inline' for styles on /docs alone. `Server` names no version (aiohttp would say
`Python/3.x aiohttp/3.x`).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import MutableMapping

from aiohttp import web

from sagashop.http.openapi import DOCS_ASSETS, docs_page_html

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
_PAGE_BASE = "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
MONITOR_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    f"img-src 'self' data:; {_PAGE_BASE}"
)
SERVER = "sagashop"
STATIC_PREFIXES = ("/monitor/", f"{DOCS_ASSETS}/")
"""Files that are the same for everyone: the only answers a browser may keep."""


def _inline_script_hashes(page: str) -> str:
    """CSP source expressions for the page's inline scripts (`'sha256-…'`)."""
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.DOTALL)
    digests = (base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() for s in scripts)
    return " ".join(f"'sha256-{digest}'" for digest in digests)


DOCS_POLICY = (
    f"default-src 'none'; script-src 'self' {_inline_script_hashes(docs_page_html('sagashop'))}; "
    f"style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; {_PAGE_BASE}"
)


def policy_for(path: str) -> str:
    """The Content-Security-Policy of an answer to `path`."""
    if path == "/docs" or path.startswith(f"{DOCS_ASSETS}/"):
        return DOCS_POLICY
    if path == "/" or _static(path):
        return MONITOR_POLICY
    return JSON_POLICY


def _static(path: str) -> bool:
    return path.startswith(STATIC_PREFIXES) and path != "/monitor/events"


async def secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    """What every answer says about itself, whoever made it."""
    stamp(response.headers, request.path)


def stamp(headers: MutableMapping[str, str], path: str) -> None:
    """The security headers of an answer to `path` (one the parser could not read has none)."""
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Content-Security-Policy"] = policy_for(path)
    headers["Server"] = SERVER
    headers["Referrer-Policy"] = "no-referrer"
    if not _static(path):
        headers["Cache-Control"] = "no-store"


def add_security_headers(app: web.Application) -> None:
    app.on_response_prepare.append(secure_headers)
