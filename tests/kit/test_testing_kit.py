"""``spikard.testing``: the clients of ``app.test_server()`` a user's tests are written with.

Every test runs on asyncio and trio (the conftest's ``anyio_backend``), the point of the kit.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
import trustme

from spikard import (
    ConnectionClosed,
    HandshakeRejected,
    Request,
    Spikard,
    StreamingResponse,
    WebSocket,
    WebSocketMessage,
)
from spikard.testing import TestResponse, TestWebSocket

pytestmark = pytest.mark.anyio


def build_app() -> Spikard:
    app = Spikard()

    @app.websocket("/echo")
    async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket:
            yield message

    @app.websocket("/chat")
    async def chat(socket: WebSocket) -> AsyncIterator[str]:
        name = socket.query_params.get("name", "anon")
        async for message in socket:
            data = json.loads(message.as_text() or "null")
            yield json.dumps({"from": name, "text": data["text"]})

    @app.websocket("/bye")
    async def bye(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        yield WebSocketMessage.text("one")
        yield WebSocketMessage.text("two")
        yield WebSocketMessage.close(4001, "done")

    @app.websocket("/private")
    async def private(socket: WebSocket) -> None:
        await socket.reject(401, "who are you?")

    @app.websocket("/proto")
    async def proto(socket: WebSocket) -> None:
        await socket.accept(subprotocol="b", headers={"x-room": "7"})
        await socket.send(socket.request.headers.get("x-token", ""))
        await socket.receive()

    @app.get("/items/{item_id:int}")
    def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/echo")
    async def echo_body(request: Request) -> dict[str, Any]:
        return {"got": await request.json(), "type": request.headers.get("content-type")}

    @app.get("/stream")
    def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for n in range(3):
                yield f"{n};"

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/forever")
    async def forever() -> AsyncIterator[str]:
        while True:
            yield "tick\n"
            await anyio.sleep(0.05)

    return app


APP = build_app()


async def test_websocket_send_receive_and_iterate() -> None:
    async with APP.test_server() as server, server.connect("/echo") as ws:
        assert isinstance(ws, TestWebSocket)
        await ws.send("hello")
        assert (await ws.receive()).as_text() == "hello"
        await ws.send(b"\x00\x01")
        assert await ws.receive_bytes() == b"\x00\x01"
        await ws.send_json({"n": 1})
        assert await ws.receive_json() == {"n": 1}
        await ws.send("x")
        assert await ws.receive_text() == "x"
    assert ws.close_code == 1000


async def test_query_string_and_json_helpers() -> None:
    async with APP.test_server() as server, server.connect("/chat?name=ada") as ws:
        await ws.send_json({"text": "hi"})
        assert await ws.receive_json() == {"from": "ada", "text": "hi"}


async def test_iteration_ends_at_the_servers_close_with_its_code() -> None:
    async with APP.test_server() as server, server.connect("/bye") as ws:
        texts = [message.as_text() async for message in ws]
        assert texts == ["one", "two"]
        assert ws.close_code == 4001
        assert ws.close_reason == "done"
        with pytest.raises(ConnectionClosed) as closed:
            await ws.receive()
        assert closed.value.code == 4001


async def test_a_rejected_handshake_raises_with_status_and_body() -> None:
    async with APP.test_server() as server:
        with pytest.raises(HandshakeRejected) as rejected:
            async with server.connect("/private"):
                pass
        assert rejected.value.status_code == 401
        assert rejected.value.body == b"who are you?"
        with pytest.raises(HandshakeRejected) as missing:
            async with server.connect("/nowhere"):
                pass
        assert missing.value.status_code == 404


async def test_subprotocols_headers_and_response_headers() -> None:
    async with (
        APP.test_server() as server,
        server.connect("/proto", subprotocols=["a", "b"], headers={"x-token": "t1"}) as ws,
    ):
        assert ws.subprotocol == "b"
        assert ws.response_headers["x-room"] == "7"
        assert await ws.receive_text() == "t1"


async def test_receive_is_bounded_by_the_timeout() -> None:
    async with APP.test_server() as server, server.connect("/echo", timeout=0.2) as ws:
        with pytest.raises(TimeoutError):
            await ws.receive()


async def test_close_sends_our_code() -> None:
    app = Spikard()
    seen: list[int | None] = []

    @app.websocket("/watch")
    async def watch(socket: WebSocket) -> None:
        async for _ in socket:
            pass
        seen.append(socket.close_code)

    async with app.test_server() as server:
        async with server.connect("/watch") as ws:
            await ws.close(4002, "leaving")
        assert ws.close_code == 4002
        with anyio.fail_after(5):
            while not seen:
                await anyio.sleep(0.01)
    assert seen == [4002]


async def test_http_requests() -> None:
    async with APP.test_server() as server:
        reply = await server.request("GET", "/items/5")
        assert isinstance(reply, TestResponse)
        assert reply.status == 200
        assert reply.reason == "OK"
        assert reply.headers["content-type"] == "application/json"
        assert reply.json() == {"id": 5}
        posted = await server.request("POST", "/echo", json={"a": [1, 2]})
        assert posted.json() == {"got": {"a": [1, 2]}, "type": "application/json"}
        missing = await server.request("GET", "/nothing")
        assert missing.status == 404
        streamed = await server.request("GET", "/stream")
        assert streamed.text == "0;1;2;"
        assert streamed.headers["transfer-encoding"] == "chunked"
        head = await server.request("HEAD", "/items/5")
        assert head.status == 200
        assert head.body == b""


async def test_an_endless_response_is_bounded_by_the_timeout() -> None:
    async with APP.test_server() as server:
        with pytest.raises(TimeoutError):
            await server.request("GET", "/forever", timeout=0.3)


async def test_over_tls() -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(context)
    client = ssl.create_default_context()
    authority.configure_trust(client)
    async with APP.test_server(ssl_context=context) as server:
        assert server.url.startswith("https://")
        async with server.connect("/echo", ssl_context=client) as ws:
            await ws.send("secure")
            assert await ws.receive_text() == "secure"
        reply = await server.request("GET", "/items/1", ssl_context=client)
        assert reply.json() == {"id": 1}
        unverified = await server.request("GET", "/items/2")  # the default trusts the server
        assert unverified.json() == {"id": 2}
