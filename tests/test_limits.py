"""Limits and options of the WebSocket layer: frame size, connection cap, origins, idle
timeout, permessage-deflate (and its bomb guard), TLS."""

from __future__ import annotations

import functools
import ssl
import zlib
from collections.abc import AsyncIterator

import anyio
import pytest
import trustme
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from spikard import Spikard, WebSocket, WebSocketConfig, WebSocketMessage

from .helpers import (
    close_code,
    handshake_refusal,
    masked_frame,
    parse_server_frames,
    read_all,
    read_until,
    upgrade_request,
    ws_connect,
)


def echo_app(**options: object) -> Spikard:
    app = Spikard(websocket=WebSocketConfig(**options))  # type: ignore[arg-type]

    @app.websocket("/echo")
    async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket:
            yield message

    return app


async def test_a_frame_over_max_frame_size_closes_1009() -> None:
    app = echo_app(max_frame_size=100, max_message_size=10_000)
    async with app.test_server() as server, ws_connect(server.ws_url("/echo")) as ws:
        await ws.send("x" * 100)
        assert await ws.recv() == "x" * 100
        await ws.send("x" * 101)
        with pytest.raises(ConnectionClosedError) as caught:
            await ws.recv()
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == 1009


async def test_fragments_under_max_frame_size_may_add_up_to_max_message_size() -> None:
    app = echo_app(max_frame_size=100, max_message_size=1000)
    async with app.test_server() as server, ws_connect(server.ws_url("/echo")) as ws:
        await ws.send(["y" * 100 for _ in range(9)])
        assert await ws.recv() == "y" * 900


async def test_handshakes_over_max_connections_get_503_with_retry_after() -> None:
    app = echo_app(max_connections=2, retry_after=7, max_connections_per_client=None)
    async with (
        app.test_server() as server,
        ws_connect(server.ws_url("/echo")),
        ws_connect(server.ws_url("/echo")),
    ):
        caught = await handshake_refusal(server.ws_url("/echo"))
        assert caught.status_code == 503
        assert caught.headers["retry-after"] == "7"
    async with app.test_server() as server, ws_connect(server.ws_url("/echo")) as ws:
        await ws.send("room again")
        assert await ws.recv() == "room again"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("HTTPS://APP.EXAMPLE.COM/", True),
        ("https://evil.example.com", False),
        ("null", False),
        (None, True),  # not a browser: no Origin header
    ],
)
async def test_allowed_origins(origin: str | None, allowed: bool) -> None:
    app = echo_app(allowed_origins=("https://app.example.com",))
    async with app.test_server() as server:
        headers = {} if origin is None else {"Origin": origin}
        if allowed:
            async with ws_connect(server.ws_url("/echo"), additional_headers=headers) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
        else:
            caught = await handshake_refusal(server.ws_url("/echo"), additional_headers=headers)
            assert caught.status_code == 403


async def test_any_origin_with_a_star() -> None:
    app = echo_app(allowed_origins=("*",))
    async with app.test_server() as server:
        headers = {"Origin": "https://anywhere.example"}
        async with ws_connect(server.ws_url("/echo"), additional_headers=headers) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"


async def test_an_idle_socket_is_closed_with_1000() -> None:
    app = echo_app(idle_timeout=0.2)
    async with app.test_server() as server, ws_connect(server.ws_url("/echo")) as ws:
        with anyio.fail_after(3):
            for _ in range(4):  # activity keeps it open past the timeout
                await ws.send("ping")
                assert await ws.recv() == "ping"
                await anyio.sleep(0.1)
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
        assert ws.close_code == 1000
        assert ws.close_reason == "idle timeout"


async def test_permessage_deflate_is_negotiated_only_when_enabled() -> None:
    for enabled in (True, False):
        app = echo_app(permessage_deflate=enabled)
        async with (
            app.test_server() as server,
            ws_connect(server.ws_url("/echo"), compression="deflate") as ws,
        ):
            extensions = ws.response.headers.get("sec-websocket-extensions")
            if enabled:
                assert extensions is not None
                assert extensions.startswith("permessage-deflate")
            else:
                assert extensions is None
            for text in ("a" * 10_000, "hello", "b" * 70_000):
                await ws.send(text)
                assert await ws.recv() == text
            await ws.send(bytes(range(256)) * 100)
            assert await ws.recv() == bytes(range(256)) * 100


async def test_a_client_without_compression_is_served_plain() -> None:
    app = echo_app(permessage_deflate=True)
    async with (
        app.test_server() as server,
        ws_connect(server.ws_url("/echo"), compression=None) as ws,
    ):
        assert "sec-websocket-extensions" not in ws.response.headers
        await ws.send("plain")
        assert await ws.recv() == "plain"


@functools.cache
def deflate_bomb() -> bytes:
    """200 MiB of zeros, deflated for permessage-deflate (about 200 KiB)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\0" * (1024 * 1024)
    bomb = b"".join(compressor.compress(chunk) for _ in range(200))
    bomb += compressor.flush(zlib.Z_SYNC_FLUSH)
    return bomb[:-4]  # RFC 7692: strip the empty block's tail


async def test_a_deflate_bomb_closes_1009_without_inflating_it() -> None:
    app = echo_app(permessage_deflate=True, max_message_size=64 * 1024)
    bomb = deflate_bomb()
    assert len(bomb) < 300 * 1024
    async with app.test_server() as server:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            extra = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
            await stream.send(upgrade_request("/echo", port=server.port, extra=extra))
            head = await read_until(stream, b"\r\n\r\n")
            assert b"permessage-deflate" in head
            await stream.send(masked_frame(0x2, bomb, rsv=0x4))
            frames = parse_server_frames(await read_all(stream))
            await stream.aclose()
            assert frames[-1][0] == 0x8
            assert close_code(frames[-1][1]) == 1009


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


async def test_wss_with_an_ssl_context(certificate_authority: trustme.CA) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    app = echo_app()
    async with app.test_server(ssl_context=server_context) as server:
        assert server.ws_url("/echo").startswith("wss://")
        async with ws_connect(server.ws_url("/echo"), ssl=client_context) as ws:
            await ws.send("secret")
            assert await ws.recv() == "secret"


async def test_a_plain_client_on_a_tls_port_does_not_hurt_the_server(
    certificate_authority: trustme.CA,
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    app = echo_app()
    async with app.test_server(ssl_context=server_context) as server:
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            await stream.send(upgrade_request("/echo", port=server.port))
            await read_all(stream)
            await stream.aclose()
        async with ws_connect(server.ws_url("/echo"), ssl=client_context) as ws:
            await ws.send("still fine")
            assert await ws.recv() == "still fine"
