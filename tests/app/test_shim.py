"""The callback-style compatibility API: ``WebSocketResponse(on_message=..., ...)``.

Handlers take the ``Request`` and return callbacks; ``on_connect`` runs before the 101,
``on_close`` has finished before TCP is closed, ``on_error`` hears about failures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
import pytest
from websockets.exceptions import ConnectionClosed

from spikard import (
    HandshakeRejected,
    Request,
    Spikard,
    WebSocketConfig,
    WebSocketMessage,
    WebSocketResponse,
)
from spikard.testing import TestServerInfo

from ..helpers import (
    close_code,
    handshake_refusal,
    masked_frame,
    parse_server_frames,
    read_all,
    read_until,
    upgrade_request,
    ws_connect,
)
from ..streams import Log

app = Spikard()
log = Log()


@app.websocket("/echo")
async def echo(request: Request) -> WebSocketResponse:
    async def on_message(message: WebSocketMessage) -> WebSocketMessage:
        return message

    return WebSocketResponse(on_message=on_message)


@app.websocket("/lifecycle")
async def lifecycle(request: Request) -> WebSocketResponse:
    log.append(("request", type(request).__name__, request.path, request.query_params.get("q")))

    async def on_connect() -> None:
        await anyio.sleep(0.02)
        log.append("connect")

    async def on_message(message: WebSocketMessage) -> WebSocketMessage:
        log.append(("message", message.as_text()))
        return WebSocketMessage.text(f"re: {message.as_text()}")

    async def on_close(frame: tuple[int, str] | None) -> None:
        log.append(("close", frame))
        await anyio.sleep(0.05)  # slow cleanup: the client's close must wait for it
        log.append("close done")

    async def on_error(error: str) -> None:
        log.append(("error", error))  # pragma: no cover

    return WebSocketResponse(
        on_message=on_message, on_connect=on_connect, on_close=on_close, on_error=on_error
    )


@app.websocket("/sync")
def sync_callbacks(request: Request) -> WebSocketResponse:
    def on_connect() -> None:
        log.append("connect")

    def on_message(message: WebSocketMessage) -> WebSocketMessage | None:
        text = message.as_text()
        if text == "ignore":
            return None
        return WebSocketMessage.text(f"sync {text}")

    def on_close(frame: tuple[int, str] | None) -> None:
        log.append(("close", frame))

    return WebSocketResponse(on_message=on_message, on_connect=on_connect, on_close=on_close)


@app.websocket("/none-reply")
async def none_reply(request: Request) -> WebSocketResponse:
    async def on_message(message: WebSocketMessage) -> WebSocketMessage | None:
        if message.as_text() == "quiet":
            return None
        return message

    return WebSocketResponse(on_message=on_message)


@app.websocket("/close-reply")
async def close_reply(request: Request) -> WebSocketResponse:
    async def on_message(message: WebSocketMessage) -> WebSocketMessage:
        if message.as_text() == "stop":
            return WebSocketMessage.close(4003, "stopped")
        return message

    async def on_close(frame: tuple[int, str] | None) -> None:
        log.append(("close", frame))

    return WebSocketResponse(on_message=on_message, on_close=on_close)


@app.websocket("/raises")
async def raises(request: Request) -> WebSocketResponse:
    def on_message(message: WebSocketMessage) -> None:
        raise ValueError(f"cannot handle {message.as_text()}")

    async def on_error(error: str) -> None:
        log.append(("error", error))

    def on_close(frame: tuple[int, str] | None) -> None:
        log.append(("close", frame))

    return WebSocketResponse(on_message=on_message, on_error=on_error, on_close=on_close)


@app.websocket("/wrong-reply")
async def wrong_reply(request: Request) -> WebSocketResponse:
    async def on_message(message: WebSocketMessage) -> Any:
        if message.data == "text":
            return "as text"
        if message.data == "bytes":
            return b"as bytes"
        return 3  # a dict or list would be sent as JSON

    async def on_error(error: str) -> None:
        log.append(("error", error))

    return WebSocketResponse(on_message=on_message, on_error=on_error)


@app.websocket("/connect-raises")
async def connect_raises(request: Request) -> WebSocketResponse:
    async def on_connect() -> None:
        raise RuntimeError("not today")

    def on_close(frame: tuple[int, str] | None) -> None:
        log.append(("close", frame))  # pragma: no cover

    return WebSocketResponse(on_message=lambda m: m, on_connect=on_connect, on_close=on_close)


@app.websocket("/connect-rejects")
def connect_rejects(request: Request) -> WebSocketResponse:
    def on_connect() -> None:
        if request.headers.get("authorization") != "Bearer ok":
            raise HandshakeRejected(401, "who are you?")

    return WebSocketResponse(on_message=lambda m: m, on_connect=on_connect)


@app.websocket("/rpc")
async def rpc(request: Request) -> WebSocketResponse:
    methods: dict[str, Callable[..., Any]] = {"add": lambda a, b: a + b, "echo": lambda x: x}

    async def on_message(message: WebSocketMessage) -> WebSocketMessage | None:
        call = json.loads(message.as_text() or "null")
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": call.get("id")}
        method = methods.get(call.get("method"))
        if method is None:
            reply["error"] = {"code": -32601, "message": "Method not found"}
        else:
            reply["result"] = method(*call.get("params", []))
        if call.get("id") is None:
            return None  # a notification gets no answer
        return WebSocketMessage.text(json.dumps(reply))

    return WebSocketResponse(on_message=on_message)


@pytest.fixture(autouse=True)
def _clear() -> None:
    log.clear()


async def client_close(ws: Any, code: int = 1000, reason: str = "") -> None:
    closer = getattr(ws, "aclose", None) or ws.close
    with anyio.fail_after(5):
        await closer(code, reason)


async def drain(ws: Any) -> tuple[list[Any], int | None, str | None]:
    received: list[Any] = []
    with anyio.fail_after(5):
        try:
            for _ in range(100):
                received.append(await ws.recv())
        except ConnectionClosed:
            return received, ws.close_code, ws.close_reason
    raise AssertionError("the server never closed")  # pragma: no cover


async def raw_upgrade(server: TestServerInfo, path: str) -> anyio.abc.SocketStream:
    stream = await anyio.connect_tcp("127.0.0.1", server.port)
    await stream.send(upgrade_request(path, port=server.port))
    head = await read_until(stream, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream


async def test_echo() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/echo")) as ws:
        with anyio.fail_after(5):
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"


async def test_lifecycle_order_and_close_frame() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/lifecycle?q=1")) as ws:
            assert log == [("request", "Request", "/lifecycle", "1"), "connect"]
            with anyio.fail_after(5):
                await ws.send("hi")
                assert await ws.recv() == "re: hi"
        # when the client's close returns, on_close has run to its end
        assert log[-2:] == [("close", (1000, "")), "close done"]
        assert log[2] == ("message", "hi")


async def test_on_close_receives_client_code_and_reason() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/lifecycle")) as ws:
            await client_close(ws, 4000, "x")
        assert log[-2:] == [("close", (4000, "x")), "close done"]


async def test_on_close_gets_none_when_peer_sends_no_close_frame() -> None:
    async with app.test_server() as server:
        stream = await raw_upgrade(server, "/lifecycle")
        await stream.aclose()
        await log.wait_for_item("close done")
    assert ("close", None) in log
    assert not any(isinstance(e, tuple) and e[0] == "error" for e in log)


async def test_sync_callbacks() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/sync")) as ws:
            assert log == ["connect"]
            with anyio.fail_after(5):
                await ws.send("ignore")
                await ws.send("a")
                assert await ws.recv() == "sync a"
        assert log == ["connect", ("close", (1000, ""))]


async def test_on_message_returning_none_sends_nothing() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/none-reply")) as ws:
        with anyio.fail_after(5):
            await ws.send("quiet")
            await ws.send("loud")
            # had "quiet" been answered, it would arrive first
            assert await ws.recv() == "loud"


async def test_on_message_returning_close_closes_with_its_code() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/close-reply")) as ws:
        await ws.send("a")
        await ws.send("stop")
        received, code, reason = await drain(ws)
    assert received == ["a"]
    assert (code, reason) == (4003, "stopped")
    assert log == [("close", (4003, "stopped"))]


async def test_on_message_raising_calls_on_error_and_closes_1011() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/raises")) as ws:
        await ws.send("bad")
        received, code, _ = await drain(ws)
    assert received == []
    assert code == 1011
    errors = [e for e in log if e[0] == "error"]
    assert len(errors) == 1
    assert isinstance(errors[0][1], str)
    assert "ValueError" in errors[0][1]
    assert "cannot handle bad" in errors[0][1]
    assert log[-1][0] == "close"


async def test_on_message_may_return_str_or_bytes_but_not_an_int() -> None:
    log.clear()
    async with app.test_server() as server, ws_connect(server.ws_url("/wrong-reply")) as ws:
        await ws.send("text")
        assert await ws.recv() == "as text"
        await ws.send("bytes")
        assert await ws.recv() == b"as bytes"
        await ws.send("int")
        received, code, _ = await drain(ws)
    assert received == []
    assert code == 1011
    assert [e for e in log if e[0] == "error"] == [
        (
            "error",
            "TypeError: on_message returned 'int'; return WebSocketMessage, str, bytes, a dict "
            "or list (JSON), a typed value or None",
        )
    ]


async def test_on_connect_raising_rejects_with_403() -> None:
    async with app.test_server() as server:
        info = await handshake_refusal(server.ws_url("/connect-raises"))
    assert info.status_code == 403
    assert log == []


async def test_on_connect_handshake_rejected_picks_the_status() -> None:
    async with app.test_server() as server:
        info = await handshake_refusal(server.ws_url("/connect-rejects"))
        assert info.status_code == 401
        assert info.body == b"who are you?"
        headers = {"Authorization": "Bearer ok"}
        async with ws_connect(server.ws_url("/connect-rejects"), additional_headers=headers) as ws:
            with anyio.fail_after(5):
                await ws.send("in")
                assert await ws.recv() == "in"


async def test_json_rpc_request_response() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/rpc")) as ws:
        with anyio.fail_after(5):
            call = {"jsonrpc": "2.0", "id": 1, "method": "add", "params": [2, 3]}
            await ws.send(json.dumps(call))
            assert json.loads(await ws.recv()) == {"jsonrpc": "2.0", "id": 1, "result": 5}
            await ws.send(json.dumps({"jsonrpc": "2.0", "method": "echo", "params": ["n"]}))
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "nope"}))
            reply = json.loads(await ws.recv())
    assert reply["id"] == 2
    assert reply["error"]["code"] == -32601


async def test_many_messages_in_order() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/echo")) as ws:
        with anyio.fail_after(10):
            for i in range(50):
                await ws.send(str(i))
            assert [await ws.recv() for _ in range(50)] == [str(i) for i in range(50)]


async def test_messages_in_the_same_read_as_close_reach_on_message() -> None:
    async with app.test_server() as server:
        stream = await raw_upgrade(server, "/lifecycle")
        await stream.send(
            masked_frame(0x1, b"last words") + masked_frame(0x8, (1000).to_bytes(2, "big"))
        )
        with anyio.fail_after(3):
            await read_all(stream)
        await stream.aclose()
        await log.wait_for_item("close done")
    assert ("message", "last words") in log


def test_websocket_response_needs_on_message() -> None:
    with pytest.raises(TypeError):
        WebSocketResponse(on_message=None)  # type: ignore[arg-type]


def test_websocket_response_repr_names_the_callbacks() -> None:
    response = WebSocketResponse(on_message=lambda m: m, on_close=lambda f: None)
    assert repr(response) == "WebSocketResponse(on_message, on_close)"


failing_app = Spikard(websocket=WebSocketConfig(ping_interval=0.1, ping_timeout=0.2))


@failing_app.websocket("/watched")
async def watched(request: Request) -> WebSocketResponse:
    def on_error(error: str) -> None:
        log.append(("error", error))

    def on_close(frame: tuple[int, str] | None) -> None:
        log.append(("close", frame))

    return WebSocketResponse(on_message=lambda m: m, on_error=on_error, on_close=on_close)


async def test_protocol_error_calls_on_error_and_closes_1002() -> None:
    async with failing_app.test_server() as server:
        stream = await raw_upgrade(server, "/watched")
        await stream.send(b"\x81\x02hi")  # an unmasked client frame violates RFC 6455 5.1
        with anyio.fail_after(3):
            frames = parse_server_frames(await read_all(stream))
        await stream.aclose()
        await log.wait_for(lambda entries: any(e[0] == "close" for e in entries))
    assert frames[-1][0] == 0x8
    assert close_code(frames[-1][1]) == 1002
    errors = [e[1] for e in log if e[0] == "error"]
    assert len(errors) == 1
    assert "1002" in errors[0]
    assert log[-1] == ("close", None)


async def test_keepalive_timeout_calls_on_error_and_closes_1011() -> None:
    async with failing_app.test_server() as server:
        stream = await raw_upgrade(server, "/watched")
        with anyio.fail_after(3):
            frames = parse_server_frames(await read_all(stream))
        await stream.aclose()
        await log.wait_for(lambda entries: any(e[0] == "close" for e in entries))
    assert close_code(frames[-1][1]) == 1011
    errors = [e[1] for e in log if e[0] == "error"]
    assert len(errors) == 1
    assert "1011" in errors[0]
