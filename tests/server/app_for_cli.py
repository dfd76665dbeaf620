"""A tiny application served by ``python -m spikard`` in the CLI and shutdown tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

from spikard import Request, Spikard, WebSocket, WebSocketMessage

app = Spikard()

NOT_AN_APP = "just a string"


@app.websocket("/echo")
async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message


@app.get("/health")
async def health(request: Request) -> dict[str, str]:
    return {"status": "ok", "path": request.path}
