"""The apps of ``benchmarks.asgi_bench``: one Starlette app and one spikard app, same routes.

Both answer ``GET /`` with 13 bytes of text (``Hello, world!``, what
``benchmarks.http_loadgen`` checks) and echo WebSocket messages on ``/`` (text as text,
binary as binary, what ``benchmarks.loadgen`` checks). The spikard app uses native routes
and has the per-client limits off (the load generator connects from one address).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from spikard import Spikard, WebSocket, WebSocketConfig, WebSocketMessage

from . import MAX_MESSAGE
from ._limits import NO_CLIENT_LIMITS

BODY = "Hello, world!"


async def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(BODY)


async def _echo(websocket: StarletteWebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] != "websocket.receive":
            break
        text = message.get("text")
        if text is not None:
            await websocket.send_text(text)
        else:
            await websocket.send_bytes(message["bytes"])


starlette_app = Starlette(routes=[Route("/", _hello), WebSocketRoute("/", _echo)])
"""The plain ASGI app every server runs."""

_NO_LIMITS: dict[str, Any] = dict(NO_CLIENT_LIMITS)
spikard_app = Spikard(websocket=WebSocketConfig(max_message_size=MAX_MESSAGE, **_NO_LIMITS))
"""The spikard app, run natively by spikard's server and through its ASGI interface elsewhere."""


@spikard_app.get("/")
async def hello() -> str:
    return BODY


@spikard_app.websocket("/")
async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message
