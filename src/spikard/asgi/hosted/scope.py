"""A spikard :class:`~spikard.Request` from an ASGI ``http`` or ``websocket`` scope.

Routing uses the path inside the app: the scope's ``path`` minus its ``root_path`` prefix,
as the ASGI spec and Starlette (>= 0.33) have it for a mounted app. ``raw_path`` (and
``request.url``) stay what the client sent, so redirects and links keep the mount prefix.
"""

from __future__ import annotations

from urllib.parse import quote

from ...datastructures import Address, Headers
from ...requests import BodySource, DepartureSource, Request
from .types import Scope

__all__ = ["build_request", "route_path", "scope_headers"]

_PATH_SAFE = "/:@!$&'()*+,;=~"
"""Characters of a path that stay as they are when a target is rebuilt from ``path``."""


def route_path(scope: Scope) -> str:
    """The path the app routes on: ``path`` without the ``root_path`` it is mounted at.

    A ``path`` that does not start with ``root_path`` (a server that strips it itself) is
    used as it is.
    """
    path: str = scope.get("path") or "/"
    root: str = (scope.get("root_path") or "").rstrip("/")
    if root and path.startswith(root):
        rest = path[len(root) :]
        if not rest:
            return "/"
        if rest.startswith("/"):
            return rest
    return path


def scope_headers(scope: Scope) -> Headers:
    """The scope's header fields."""
    return Headers.from_raw(scope.get("headers") or ())


def build_request(
    scope: Scope,
    headers: Headers,
    *,
    source: BodySource | None,
    max_body_size: int,
    departures: DepartureSource | None = None,
) -> Request:
    """The request of ``scope``; its body is read from ``source`` (None: no body)."""
    raw = scope.get("raw_path")
    raw_path = raw.decode("latin-1") if raw else quote(scope.get("path") or "/", safe=_PATH_SAFE)
    query: bytes = scope.get("query_string") or b""
    target = f"{raw_path}?{query.decode('latin-1')}" if query else raw_path
    client = scope.get("client")
    server = scope.get("server")
    scheme: str = scope.get("scheme") or ("ws" if scope["type"] == "websocket" else "http")
    request = Request(
        scope.get("method", "GET").upper(),
        target,
        headers,
        client=Address(client[0], client[1]) if client else None,
        server=Address(server[0], server[1] or 0) if server else None,
        http_version=scope.get("http_version") or "1.1",
        scheme=scheme,
        source=source,
        max_body_size=max_body_size,
        departures=departures,
    )
    request.path = route_path(scope)
    return request
