"""No log line carries a secret: a whole debug-level session, error paths included, is grepped.

Secrets are planted where clients put them: sensitive query parameters (browser WebSockets
cannot set headers, so tokens travel in the query), ``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``Set-Cookie`` and ``Sec-WebSocket-Protocol``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import (
    HandshakeRejected,
    HTTPConfig,
    Request,
    Response,
    Spikard,
    WebSocket,
    WebSocketConfig,
    WebSocketMessage,
)
from spikard.protocol.redaction import redact_query

from .helpers import read_all

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-PLANTED"


def build_app() -> Spikard:
    app = Spikard(
        http=HTTPConfig(max_body_size=64, request_timeout=1.0),
        websocket=WebSocketConfig(accept_timeout=0.5),
    )

    @app.get("/items")
    def items(request: Request) -> Response:
        response = Response("ok")
        response.set_cookie("session", SECRET + "-set-cookie")
        return response

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("a handler failure")

    @app.post("/upload")
    async def upload(request: Request) -> str:
        return (await request.body()).decode()

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        offered = socket.subprotocols
        await socket.accept(subprotocol=offered[0] if offered else None)
        async for message in socket:
            yield message

    @app.websocket("/refuse")
    async def refuse(socket: WebSocket) -> None:
        await socket.reject(401)

    @app.websocket("/crash")
    async def crash(socket: WebSocket) -> AsyncIterator[str]:
        yield "one"
        raise RuntimeError("a session failure")

    @app.websocket("/silent")
    async def silent(socket: WebSocket) -> None:
        await anyio.sleep(5)  # never answers: accept_timeout

    return app


def credentials(tag: str) -> dict[str, str]:
    return {
        "authorization": f"Bearer {SECRET}-{tag}-authorization",
        "proxy-authorization": f"Basic {SECRET}-{tag}-proxy",
        "cookie": f"sid={SECRET}-{tag}-cookie",
    }


def query(tag: str) -> str:
    names = ("token", "access_token", "API_KEY", "password", "secret", "auth")
    return "&".join(f"{name}={SECRET}-{tag}-{name}" for name in names) + "&page=2"


async def raw(server_port: int, data: bytes) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", server_port) as stream:
        await stream.send(data)
        with anyio.fail_after(5):
            return await read_all(stream)


async def test_a_debug_level_session_never_logs_a_planted_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = build_app()
    caplog.set_level(logging.DEBUG)
    async with app.test_server() as server:
        port = server.port
        headers = credentials("http")
        assert (await server.request("GET", f"/items?{query('ok')}", headers=headers)).status == 200
        assert (
            await server.request("GET", f"/nowhere?{query('404')}", headers=headers)
        ).status == 404
        assert (await server.request("GET", f"/boom?{query('500')}", headers=headers)).status == 500
        too_big = await server.request(
            "POST", f"/upload?{query('413')}", headers=headers, body=b"x" * 1000
        )
        assert too_big.status == 413
        protocols = [f"{SECRET}-subprotocol", "chat"]
        async with server.connect(
            f"/ws?{query('ws')}", subprotocols=protocols, headers=credentials("ws")
        ) as ws:
            await ws.send("hello")
            assert await ws.receive_text() == "hello"
        for path in ("/refuse", "/silent"):
            with pytest.raises(HandshakeRejected):
                async with server.connect(
                    f"{path}?{query(path[1:])}", subprotocols=protocols, headers=credentials(path)
                ):
                    pass
        with pytest.raises(HandshakeRejected):  # a cross-site page (same-origin default)
            async with server.connect(
                f"/ws?{query('origin')}",
                subprotocols=protocols,
                headers={**credentials("origin"), "origin": "https://evil.example"},
            ):
                pass
        async with server.connect(f"/crash?{query('crash')}", subprotocols=protocols) as ws:
            assert await ws.receive_text() == "one"
        # malformed requests: a control character in a credential, an oversized cookie, a
        # bad version, a head that never ends
        bad_value = (
            f"GET /items?{query('ctl')} HTTP/1.1\r\nhost: x\r\n"
            f"authorization: Bearer {SECRET}-ctl\x07\r\n\r\n"
        )
        assert b" 400 " in await raw(port, bad_value.encode())
        huge = (
            f"GET /items?{query('431')} HTTP/1.1\r\nhost: x\r\n"
            f"cookie: {SECRET}-431{'x' * 20000}\r\n\r\n"
        )
        assert b" 431 " in await raw(port, huge.encode())
        version = (
            f"GET /items?{query('505')} HTTP/9.9\r\nhost: x\r\nauthorization: {SECRET}-505\r\n\r\n"
        )
        assert b" 505 " in await raw(port, version.encode())
        stalled = f"GET /items?{query('408')} HTTP/1.1\r\nauthorization: {SECRET}-408\r\n"
        assert b" 408 " in await raw(port, stalled.encode())
    logged = "\n".join(
        record.getMessage()
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert caplog.records, "nothing was logged: the test would prove nothing"
    assert any(r.name == "spikard.access" for r in caplog.records)
    assert "page=2" in logged  # the query is still there, its secrets are not
    assert SECRET not in logged, [line for line in logged.splitlines() if SECRET in line]


@pytest.mark.parametrize(
    ("raw_query", "shown"),
    [
        ("token=abc&page=2", "token=***&page=2"),
        ("Token=abc", "Token=***"),
        ("%74oken=abc", "%74oken=***"),
        ("tokens=abc", "tokens=abc"),
        ("token=", "token="),
        ("a=1&auth=x&auth=y", "a=1&auth=***&auth=***"),
        ("", ""),
    ],
)
def test_redact_query(raw_query: str, shown: str) -> None:
    assert redact_query(raw_query) == shown


def test_the_parameter_list_is_configurable() -> None:
    assert redact_query("sig=1&token=2", ("sig",)) == "sig=***&token=2"
    with pytest.raises(TypeError):
        HTTPConfig(redacted_query_params="token")  # type: ignore[arg-type]
