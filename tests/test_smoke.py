from __future__ import annotations

from collections.abc import AsyncIterator

from spikard import Spikard, WebSocket, WebSocketMessage

from .helpers import ws_connect

app = Spikard()


@app.websocket("/echo")
async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message


async def test_echo_text_and_binary() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/echo")) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\xff")
        assert await ws.recv() == b"\x00\xff"
