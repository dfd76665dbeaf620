"""The ASGI 3 entry of a spikard app: ``await app(scope, receive, send)``.

``lifespan`` runs the app's lifespan (:mod:`.lifespan`), ``http`` answers a request
(:mod:`.http`), ``websocket`` runs a session on the ASGI driver (:mod:`.websocket`). None of
this is on the path of spikard's own server, which calls :meth:`~spikard.Spikard.handle`.
"""

from __future__ import annotations

import logging

import anyio

from ...errors import HandshakeRejected
from ...protocol.handshake import check_origin, origin_matcher
from ...responses import PlainTextResponse, Response
from .http import serve_http
from .lifespan import NOT_STARTED, lifespan_ran, run_lifespan
from .scope import build_request, scope_headers
from .types import HostedApp, Receive, Scope, Send
from .websocket import ASGIWebSocket

__all__ = ["serve_asgi"]

logger = logging.getLogger("spikard.websocket")


async def serve_asgi(app: HostedApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one ASGI scope with ``app``.

    Raises:
        ValueError: a scope type that is neither ``http``, ``websocket`` nor ``lifespan``.
    """
    kind = scope["type"]
    if kind == "http":
        if lifespan_ran(app):
            await serve_http(app, scope, receive, send)
            return
        await _not_started(send)
    elif kind == "websocket":
        await _serve_websocket(app, scope, receive, send)
    elif kind == "lifespan":
        await run_lifespan(app, scope, receive, send)
    else:
        raise ValueError(f"a spikard app serves http, websocket and lifespan scopes, not {kind!r}")


async def _not_started(send: Send) -> None:
    response = PlainTextResponse(f"Internal Server Error: {NOT_STARTED}", 500)
    await send({"type": "http.response.start", "status": 500, "headers": response.raw_headers()})
    await send({"type": "http.response.body", "body": response.body})


async def _serve_websocket(app: HostedApp, scope: Scope, receive: Receive, send: Send) -> None:
    event = None
    with anyio.move_on_after(app.http_config.request_timeout):  # servers send it at once
        event = await receive()
    if event is None or event["type"] != "websocket.connect":
        return  # the client left first
    config = app.websocket_config
    request = build_request(
        scope, scope_headers(scope), source=None, max_body_size=app.http_config.max_body_size
    )
    connection = ASGIWebSocket(scope, receive, send, request, config)
    if not lifespan_ran(app):
        await connection.reject(500, f"Internal Server Error: {NOT_STARTED}")
        return
    try:
        check_origin(request.headers, origin_matcher(config.allowed_origins))
    except HandshakeRejected as rejection:
        logger.info(
            "refused WebSocket for %s: origin %r is not allowed",
            request.path,
            request.headers.get("origin"),
        )
        await connection.reject(rejection.status_code, rejection.body, rejection.headers)
        return
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(connection.run_reader)
        task_group.start_soon(connection.run_watchdog)
        try:
            response = await app.handle(request, connection)
        except Exception:
            logger.exception("the app failed on the WebSocket handshake for %s", request.path)
            response = Response(status_code=500)
        if not connection.accepted and not connection.rejected:
            await _refuse(connection, response)
        task_group.cancel_scope.cancel()


async def _refuse(connection: ASGIWebSocket, response: Response | None) -> None:
    """No session ran (no WebSocket route, a middleware answered): send its response."""
    if response is None or not 400 <= response.status_code <= 599:
        response = PlainTextResponse("Internal Server Error", 500)
    await connection.reject(response.status_code, response.body, dict(response.headers))
