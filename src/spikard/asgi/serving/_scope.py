"""The ``http`` and ``websocket`` scopes of a request, as ASGI 3 (spec 2.4) defines them."""

from __future__ import annotations

from typing import Any

from ...requests import Request
from ._types import ASGI_VERSION, Scope

__all__ = ["http_scope", "raw_headers", "websocket_scope"]


_NAMES: dict[str, bytes] = {}
"""Header names as scope bytes (lower-cased); names repeat across requests."""
_NAMES_CACHED = 512


def _name(name: str) -> bytes:
    encoded = _NAMES.get(name)
    if encoded is None:
        encoded = name.lower().encode("latin-1")
        if len(_NAMES) < _NAMES_CACHED:
            _NAMES[name] = encoded
    return encoded


def raw_headers(request: Request) -> list[tuple[bytes, bytes]]:
    """The request's header fields in order, names lower-cased, as latin-1 bytes."""
    name = _name
    return [
        (name(field), value.encode("latin-1")) for field, value in request.headers.multi_items()
    ]


def _common(
    spec_version: str,
    request: Request,
    server: tuple[str, int] | None,
    root_path: str,
    state: dict[str, Any] | None,
) -> Scope:
    client = request.client
    local = request.server  # the connection's own end; the bound address when unknown
    if local is not None:
        server = (local.host, local.port)
    scope: Scope = {
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": request.http_version,
        "scheme": request.scheme,
        # The spec's path includes root_path (as uvicorn's --root-path gives it).
        "path": root_path + request.path,
        "raw_path": (root_path + request.raw_path).encode("latin-1")
        if root_path
        else request.raw_path.encode("latin-1"),
        "query_string": request.query_string.encode("latin-1"),
        "root_path": root_path,
        "headers": raw_headers(request),
        "client": (client.host, client.port) if client is not None else None,
        "server": server,
    }
    if state is not None:
        scope["state"] = dict(state)  # each request gets a shallow copy (the spec's rule)
    return scope


def http_scope(
    request: Request,
    server: tuple[str, int] | None,
    root_path: str,
    state: dict[str, Any] | None,
) -> Scope:
    """The ``http`` scope of ``request``."""
    # 2.3, as uvicorn's HTTP: apps listen for http.disconnect (Starlette then cancels a
    # streamed body at once); a send after the client left still raises, after a grace.
    scope = _common("2.3", request, server, root_path, state)
    scope["type"] = "http"
    scope["method"] = request.method
    return scope


def websocket_scope(
    request: Request,
    subprotocols: tuple[str, ...],
    server: tuple[str, int] | None,
    root_path: str,
    state: dict[str, Any] | None,
) -> Scope:
    """The ``websocket`` scope of a handshake ``request``; offers the denial extension."""
    scope = _common(ASGI_VERSION["spec_version"], request, server, root_path, state)
    scope["type"] = "websocket"
    scope["subprotocols"] = list(subprotocols)
    scope["extensions"] = {"websocket.http.response": {}}
    return scope
