"""A sender that never waits, to a peer that reset the connection, must not freeze the server.

The peer's reset is noticed by a write (asyncio closes the transport at once); the next
write must fail instead of dropping the bytes while the loop never turns again.
"""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import AsyncIterator

import anyio
import pytest
import trustme

from spikard import Spikard, WebSocket, WebSocketConfig
from spikard.asgi.serving import Receive, Scope, Send

from ..asgi_serving.serving import serve
from ..helpers import upgrade_request

BOUND = 5.0
CHUNK = b"x" * 65536


def reset_after_first_frame(port: int, path: str, context: ssl.SSLContext | None = None) -> None:
    """Handshake, read a little of the first frame, then close with RST (data unread)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
    sock = raw if context is None else context.wrap_socket(raw, server_hostname="127.0.0.1")
    with sock:
        sock.sendall(upgrade_request(path, port=port))
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        assert data.startswith(b"HTTP/1.1 101"), data
        sock.recv(4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def still_serving(port: int, context: ssl.SSLContext | None = None) -> bytes:
    with anyio.fail_after(BOUND):
        connecting = (
            anyio.connect_tcp("127.0.0.1", port)
            if context is None
            else anyio.connect_tcp(
                "127.0.0.1", port, ssl_context=context, tls_standard_compatible=False
            )
        )
        async with await connecting as stream:
            await stream.send(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                try:
                    data += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return data


@pytest.mark.parametrize("secure", [False, True], ids=["tcp", "tls"])
async def test_a_spikard_handler_flooding_a_reset_peer_ends(secure: bool) -> None:
    server_context = client_context = None
    if secure:
        authority = trustme.CA()
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1").configure_cert(server_context)
        client_context = ssl.create_default_context()
        authority.configure_trust(client_context)
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

    async with app.test_server(ssl_context=server_context) as server:
        await anyio.to_thread.run_sync(
            reset_after_first_frame, server.port, "/flood", client_context
        )
        assert (await still_serving(server.port, client_context)).endswith(b"pong")
        with anyio.fail_after(BOUND):
            while not ended:
                await anyio.sleep(0.01)


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
