"""A finished connection is freed by reference counting, not left to the cyclic collector.

Objects caught in reference cycles live until a garbage collection finds them; on a busy
server those collections cost a tenth of the CPU. Every cycle between the socket, the
session, the connection driver and the transport hooks is broken when a connection ends.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import Request, Spikard, WebSocket, WebSocketMessage, WebSocketResponse

from ..helpers import ws_connect

app = Spikard()


@app.websocket("/stream")
async def stream(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message


@app.websocket("/callbacks")
async def callbacks(request: Request) -> WebSocketResponse:
    async def on_message(message: WebSocketMessage) -> WebSocketMessage:
        return message

    return WebSocketResponse(on_message=on_message)


def ours(objects: list[object]) -> list[str]:
    """The types of the server's objects among ``objects``."""
    # asyncio's selector transport keeps a bound method of itself (a cycle of the standard
    # library's, on both ends of the connection): only the server's own objects count.
    prefixes = ("spikard.", "anyio.", "h11.", "wsproto.")
    names = [f"{type(o).__module__}.{type(o).__qualname__}" for o in objects]
    return sorted({name for name in names if name.startswith(prefixes)})


@pytest.mark.parametrize("path", ["/stream", "/callbacks"])
async def test_finished_connections_leave_no_cycles(path: str) -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url(path)) as warm_up:
            await warm_up.send("warm up")
            await warm_up.recv()
        await anyio.sleep(0.1)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for index in range(20):
                async with ws_connect(server.ws_url(path)) as client:
                    await client.send(f"message {index}")
                    assert await client.recv() == f"message {index}"
            await anyio.sleep(0.2)  # the server side finishes after the client's close
            gc.collect()
            leftovers = ours(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert leftovers == [], leftovers
