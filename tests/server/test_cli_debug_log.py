"""``--log-level debug``: handshakes (path, how many subprotocols), closes (code, reason, who
closed) and timeouts (which one) get a debug line each; none of them shows a query string, an
``Authorization`` or a ``Cookie`` value."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from websockets.exceptions import ConnectionClosed

from spikard import HandshakeRejected, HTTPConfig, Spikard, WebSocket, WebSocketMessage

from ..helpers import handshake_refusal, read_all, read_until, upgrade_request, ws_connect
from . import serve_subprocess

SECRETS = ("token=s3cret", "s3cret", "hunter2", "session=abc123", "abc123")
CREDENTIALS = {"authorization": "Bearer hunter2", "cookie": "session=abc123"}


def make_app(request_timeout: float = 10.0, keep_alive_timeout: float = 5.0) -> Spikard:
    app = Spikard(
        http=HTTPConfig(request_timeout=request_timeout, keep_alive_timeout=keep_alive_timeout)
    )

    @app.websocket("/chat")
    async def chat(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        await socket.accept(subprotocol="chat.v1" if "chat.v1" in socket.subprotocols else None)
        async for message in socket:
            if message.as_text() == "stop":
                yield WebSocketMessage.close(4000, "done")
                return
            yield message

    @app.websocket("/private")
    async def private(socket: WebSocket) -> AsyncIterator[str]:
        raise HandshakeRejected(401, "who are you?")
        yield "never"  # pragma: no cover

    @app.get("/")
    def index() -> str:
        return "hi"

    return app


async def close(ws: Any, code: int, reason: str) -> None:
    """Close with websockets' asyncio client (``close``) or its trio client (``aclose``)."""
    await (ws.aclose if hasattr(ws, "aclose") else ws.close)(code, reason)


def debug_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    for line in lines:
        for secret in SECRETS:
            assert secret not in line, line
    return lines


def one(lines: list[str], fragment: str) -> str:
    found = [line for line in lines if fragment in line]
    assert len(found) == 1, (fragment, lines)
    return found[0]


async def test_a_session_closed_by_the_client(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="spikard")
    async with make_app().test_server() as server:
        url = server.ws_url("/chat?token=s3cret")
        async with ws_connect(url, subprotocols=["chat.v1"], additional_headers=CREDENTIALS) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await close(ws, 1000, "bye")
    lines = debug_lines(caplog)
    handshake = one(lines, "WebSocket handshake from 127.0.0.1:")
    assert handshake.endswith(" for /chat (1 subprotocols offered)")
    accepted = one(lines, "accepted WebSocket 127.0.0.1:")
    assert accepted.endswith(" /chat (a subprotocol chosen)")
    ended = one(lines, "ended: ")
    assert ended.endswith(" /chat ended: the client closed with 1000 'bye'")


async def test_a_session_closed_by_the_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="spikard")
    async with make_app().test_server() as server, ws_connect(server.ws_url("/chat")) as ws:
        await ws.send("stop")
        with pytest.raises(ConnectionClosed), anyio.fail_after(5):
            await ws.recv()
        assert ws.close_code == 4000
    lines = debug_lines(caplog)
    assert one(lines, "accepted WebSocket").endswith(" /chat (no subprotocol)")
    assert one(lines, "closing WebSocket").endswith(
        " /chat: the server sent 4000 'done' (close_timeout 10.0 s)"
    )
    assert one(lines, "ended: ").endswith(
        " ended: the client answered the server's close with 4000 'done'"
    )


async def test_a_client_that_vanishes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="spikard")
    async with make_app().test_server() as server:
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            await stream.send(upgrade_request("/chat?token=s3cret", port=server.port))
            assert b" 101 " in await read_until(stream, b"\r\n\r\n")
            await stream.aclose()
            while not any("ended: " in r.getMessage() for r in caplog.records):
                await anyio.sleep(0.01)
    lines = debug_lines(caplog)
    assert one(lines, "ended: ").endswith(
        " /chat ended: the client left without a close frame (1006)"
    )


async def test_a_refused_handshake(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="spikard")
    async with make_app().test_server() as server:
        response = await handshake_refusal(
            server.ws_url("/private?token=s3cret"), additional_headers=CREDENTIALS
        )
        assert response.status_code == 401
    lines = debug_lines(caplog)
    assert one(lines, "refused WebSocket").endswith(" /private with 401")
    assert not [line for line in lines if "ended: " in line]


@pytest.mark.parametrize(
    ("timeout", "requests"),
    [("request_timeout", b""), ("keep_alive_timeout", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
)
async def test_an_idle_connection_names_its_timeout(
    caplog: pytest.LogCaptureFixture, timeout: str, requests: bytes
) -> None:
    caplog.set_level(logging.DEBUG, logger="spikard")
    async with make_app(**{timeout: 0.2}).test_server() as server:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                if requests:
                    await stream.send(requests)
                await read_all(stream)  # the server hangs up by itself
    line = one(debug_lines(caplog), "no request within")
    assert line.endswith(f": no request within 0.2 s ({timeout})")


async def test_nothing_at_debug_level_unless_asked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spikard")
    async with make_app().test_server() as server, ws_connect(server.ws_url("/chat")) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_cli_log_level_debug(anyio_backend: str) -> None:
    async with serve_subprocess(["--log-level", "debug"]) as served:
        async with ws_connect(served.ws_url("/echo?token=s3cret")) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
        await anyio.sleep(0.2)  # the server logs the end after the client's close returns
        served.process.send_signal(signal.SIGTERM)
        assert await served.wait(timeout=10) == 0
    text = served.output.decode()
    assert "DEBUG   spikard.websocket: accepted WebSocket 127.0.0.1:" in text
    assert "/echo ended: the client closed with 1000 ''" in text
    debug = [line for line in text.splitlines() if " DEBUG " in line]
    assert not [line for line in debug if "s3cret" in line]


async def test_a_percent_encoded_line_break_stays_encoded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="spikard")
    async with make_app().test_server() as server:
        with anyio.fail_after(5):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(upgrade_request("/chat%0AFORGED", port=server.port))
                await read_all(stream)
    line = one(debug_lines(caplog), "WebSocket handshake from")
    assert line.endswith(" for /chat%0AFORGED (0 subprotocols offered)")
    assert not [r for r in caplog.records if "\n" in r.getMessage()]
