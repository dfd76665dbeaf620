"""A sender that never waits, to a peer that reset the connection, must not freeze the server.

The peer's reset is noticed by a write (asyncio closes the transport at once); the next
write must fail instead of dropping the bytes while the loop never turns again.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import Spikard, WebSocket, WebSocketConfig
from spikard.asgi.serving import Receive, Scope, Send

from ..asgi_serving.serving import serve
from ..helpers import upgrade_request

BOUND = 5.0
CHUNK = b"x" * 65536


def reset_after_first_frame(port: int, path: str) -> None:
    """Handshake, read a little of the first frame, then close with RST (data unread)."""
    with socket.create_connection(("127.0.0.1", port), timeout=BOUND) as sock:
        sock.sendall(upgrade_request(path, port=port))
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        assert data.startswith(b"HTTP/1.1 101"), data
        sock.recv(4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def still_serving(port: int) -> bytes:
    with anyio.fail_after(BOUND):
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                try:
                    data += await stream.receive()
                except anyio.EndOfStream:
                    return data


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_spikard_handler_flooding_a_reset_peer_ends() -> None:
    ended: list[str] = []
    app = Spikard(websocket=WebSocketConfig(max_connections_per_client=None, handshake_rate=None))

    @app.websocket("/flood")
    async def flood(socket: WebSocket) -> AsyncIterator[bytes]:
        try:
            while True:
                yield CHUNK
        finally:
            ended.append("ended")

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    async with app.test_server() as server:
        await anyio.to_thread.run_sync(reset_after_first_frame, server.port, "/flood")
        assert (await still_serving(server.port)).endswith(b"pong")
        with anyio.fail_after(BOUND):
            while not ended:
                await anyio.sleep(0.01)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_asgi_app_flooding_a_reset_peer_gets_an_error() -> None:
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"pong"})
            return
        await receive()
        await send({"type": "websocket.accept"})
        try:
            while True:
                await send({"type": "websocket.send", "bytes": CHUNK})
        except OSError as exc:
            raised.append(exc)

    async with serve(app) as running:
        await anyio.to_thread.run_sync(reset_after_first_frame, running.port, "/flood")
        assert (await still_serving(running.port)).endswith(b"pong")
        with anyio.fail_after(BOUND):
            while not raised:
                await anyio.sleep(0.01)
