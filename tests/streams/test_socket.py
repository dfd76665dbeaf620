"""Stream handlers over real loopback sockets, driven by the real `websockets` client.

Every handler shape the adapters accept (async generator, a function returning an aiostream
pipe, a coroutine that talks to the socket itself), what a handler may yield, close codes,
the handshake request, and handshake control (reject, subprotocol) before the 101.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from aiostream import pipe, stream
from websockets.exceptions import ConnectionClosed

from spikard import (
    HandshakeRejected,
    Spikard,
    WebSocket,
    WebSocketMessage,
)

from ..helpers import handshake_refusal, ws_connect

app = Spikard()
records: dict[str, Any] = {}


# aiostream types map's function as (arg, /, *args): one per source stream.
def _upper(message: WebSocketMessage, *_: WebSocketMessage) -> WebSocketMessage:
    text = message.as_text()
    return WebSocketMessage.text(text.upper()) if text is not None else message


async def _async_upper(message: WebSocketMessage, *_: WebSocketMessage) -> WebSocketMessage:
    await anyio.lowlevel.checkpoint()
    return _upper(message)


@app.websocket("/echo")
async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message


@app.websocket("/upper")
def upper(socket: WebSocket) -> Any:
    return socket | pipe.map(_upper)


@app.websocket("/upper-text-only")
def upper_text_only(socket: WebSocket) -> Any:
    return socket | pipe.filter(WebSocketMessage.is_text) | pipe.map(_upper)


@app.websocket("/async-upper")
def async_upper(socket: WebSocket) -> Any:
    # aiostream's MapCallable cannot infer Y from a coroutine function (mypy sees Never)
    return socket | pipe.map(_async_upper)  # type: ignore[arg-type]


@app.websocket("/merge")
def merged(socket: WebSocket) -> Any:
    return stream.merge(stream.just(WebSocketMessage.text("welcome")), socket)


@app.websocket("/coroutine")
async def coroutine_handler(socket: WebSocket) -> None:
    first = await socket.receive()
    await socket.send(f"got {first.as_text()}")
    await socket.send(b"\x01\x02")
    await socket.send(WebSocketMessage.text("bye"))


@app.websocket("/str-bytes")
async def str_bytes(socket: WebSocket) -> AsyncIterator[str | bytes]:
    yield "text"
    yield b"\x00binary"


@app.websocket("/push")
async def push(socket: WebSocket) -> AsyncIterator[str]:
    for i in range(3):
        yield f"tick {i}"
        await anyio.sleep(0.01)


@app.websocket("/gen-end")
async def gen_end(socket: WebSocket) -> AsyncIterator[str]:
    yield "only"


@app.websocket("/yield-close")
async def yield_close(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    yield WebSocketMessage.text("before")
    yield WebSocketMessage.close(4001, "bye")
    yield WebSocketMessage.text("never sent")  # pragma: no cover


@app.websocket("/close-call")
async def close_call(socket: WebSocket) -> None:
    await socket.send("closing")
    await socket.close(4002, "done")
    async for _ in socket:  # drain until the peer's close reply ends the loop
        pass
    records["close-call"] = (socket.close_code, socket.close_reason)


@app.websocket("/raises")
async def raises(socket: WebSocket) -> AsyncIterator[str]:
    async for message in socket:
        yield "about to fail"
        raise RuntimeError(f"boom on {message.as_text()}")


@app.websocket("/bad-item")
async def bad_item(socket: WebSocket) -> AsyncIterator[object]:
    yield "fine"
    yield 42


@app.websocket("/rejected-too-late")
async def rejected_too_late(socket: WebSocket) -> AsyncIterator[str]:
    yield "accepted"
    raise HandshakeRejected(401)


@app.websocket("/raises-early")
async def raises_early(socket: WebSocket) -> AsyncIterator[str]:
    raise RuntimeError("before the first yield")
    yield "never"  # pragma: no cover


@app.websocket("/peer-close")
async def peer_close(socket: WebSocket) -> AsyncIterator[str]:
    records["peer-close-open"] = (socket.close_code, socket.close_reason)
    async for message in socket:
        yield message.as_text() or ""
    records["peer-close"] = (socket.close_code, socket.close_reason)


@app.websocket("/rooms/{room}")
async def room(socket: WebSocket) -> AsyncIterator[str]:
    request = socket.request
    yield json.dumps(
        {
            "path": request.path,
            "socket_path": socket.path,
            "room": socket.path_params["room"],
            "query_a": request.query_params.getlist("a"),
            "query_b": socket.query_params.get("b"),
            "header": request.headers.get("X-Custom"),
            "header_upper": socket.headers.get("X-CUSTOM"),
            "cookie": socket.cookies.get("session"),
            "method": request.method,
            "scheme": request.scheme,
            "client_host": socket.client.host if socket.client else None,
            "url": request.url,
        }
    )


@app.websocket("/items/{item_id:int}")
async def typed_item(socket: WebSocket) -> AsyncIterator[str]:
    value = socket.path_params["item_id"]
    yield f"{type(value).__name__}:{value}"


@app.websocket("/reject-401")
async def reject_401(socket: WebSocket) -> None:
    await socket.reject(401, "no")


@app.websocket("/raise-403")
async def raise_403(socket: WebSocket) -> AsyncIterator[str]:
    raise HandshakeRejected(403)
    yield "never"  # pragma: no cover


@app.websocket("/raise-in-coroutine")
async def raise_in_coroutine(socket: WebSocket) -> None:
    if socket.query_params.get("token") != "secret":
        raise HandshakeRejected(401, "bad token", {"www-authenticate": "Token"})
    await socket.send("welcome")


@app.websocket("/subprotocol")
async def subprotocol(socket: WebSocket) -> AsyncIterator[str]:
    records["offered"] = socket.subprotocols
    await socket.accept(subprotocol="chat")
    yield f"chose {socket.subprotocol}"


@app.websocket("/accept-headers")
async def accept_headers(socket: WebSocket) -> AsyncIterator[str]:
    await socket.accept(headers={"x-server": "spikard"})
    yield "hi"


async def drain(ws: Any, limit: int = 100) -> tuple[list[Any], int | None, str | None]:
    """Receive until the server closes; return the messages and the close code/reason."""
    received: list[Any] = []
    with anyio.fail_after(5):
        try:
            for _ in range(limit):
                received.append(await ws.recv())
        except ConnectionClosed:
            return received, ws.close_code, ws.close_reason
    raise AssertionError(f"no close after {limit} messages")  # pragma: no cover


async def client_close(ws: Any, code: int = 1000, reason: str = "") -> None:
    """Close from the client (asyncio client: close(), trio client: aclose())."""
    closer = getattr(ws, "aclose", None) or ws.close
    with anyio.fail_after(5):
        await closer(code, reason)


@pytest.fixture(autouse=True)
def _clear_records() -> None:
    records.clear()


# ---- handler shapes ------------------------------------------------------------------------


async def test_async_generator_echo() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/echo")) as ws:
        with anyio.fail_after(5):
            for i in range(5):
                await ws.send(f"m{i}")
                assert await ws.recv() == f"m{i}"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
            await ws.send("")
            assert await ws.recv() == ""


async def test_pipe_map_with_sync_function() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/upper")) as ws:
        with anyio.fail_after(5):
            await ws.send("hello")
            assert await ws.recv() == "HELLO"
            await ws.send(b"raw")
            assert await ws.recv() == b"raw"


async def test_pipe_filter_and_map() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/upper-text-only")) as ws:
        with anyio.fail_after(5):
            await ws.send(b"dropped")
            await ws.send("kept")
            assert await ws.recv() == "KEPT"


async def test_pipe_ends_with_1000_when_client_closes() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/upper")) as ws:
            with anyio.fail_after(5):
                await ws.send("x")
                assert await ws.recv() == "X"
        assert ws.close_code == 1000


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_pipe_map_with_async_function_asyncio(anyio_backend: str) -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/async-upper")) as ws:
        with anyio.fail_after(5):
            await ws.send("async")
            assert await ws.recv() == "ASYNC"


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_merge_asyncio(anyio_backend: str) -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/merge")) as ws:
        with anyio.fail_after(5):
            assert await ws.recv() == "welcome"
            await ws.send("echoed")
            assert await ws.recv() == "echoed"


async def test_coroutine_handler_send_receive_returns_none() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/coroutine")) as ws:
        await ws.send("ping")
        received, code, _ = await drain(ws)
    assert received == ["got ping", b"\x01\x02", "bye"]
    assert code == 1000


async def test_yield_str_and_bytes() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/str-bytes")) as ws:
        received, code, _ = await drain(ws)
    assert received == ["text", b"\x00binary"]
    assert code == 1000


async def test_server_push_while_client_silent() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/push")) as ws:
        received, code, _ = await drain(ws)
    assert received == ["tick 0", "tick 1", "tick 2"]
    assert code == 1000


# ---- close codes ---------------------------------------------------------------------------


async def test_generator_end_closes_1000() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/gen-end")) as ws:
        received, code, reason = await drain(ws)
    assert received == ["only"]
    assert (code, reason) == (1000, "")


async def test_yield_close_message_closes_with_its_code() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/yield-close")) as ws:
        received, code, reason = await drain(ws)
    assert received == ["before"]
    assert (code, reason) == (4001, "bye")


async def test_socket_close_call_and_close_code_after_close() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/close-call")) as ws:
        received, code, reason = await drain(ws)
    assert received == ["closing"]
    assert (code, reason) == (4002, "done")
    # the handler ran to completion (after the close handshake) before TCP was closed
    assert records["close-call"] == (4002, "done")


async def test_handler_exception_closes_1011() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/raises")) as ws:
        await ws.send("x")
        received, code, _ = await drain(ws)
    assert received == ["about to fail"]
    assert code == 1011


async def test_yielding_an_unsupported_type_closes_1011() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/bad-item")) as ws:
        received, code, _ = await drain(ws)
    assert received == ["fine"]
    assert code == 1011


async def test_handshake_rejected_after_accept_closes_1011() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/rejected-too-late")) as ws:
        received, code, _ = await drain(ws)
    assert received == ["accepted"]
    assert code == 1011


async def test_generator_raising_before_first_yield_accepts_then_closes_1011() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/raises-early")) as ws:
        received, code, _ = await drain(ws)
    assert received == []
    assert code == 1011


async def test_close_code_and_reason_from_peer_close() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/peer-close")) as ws:
        await ws.send("a")
        with anyio.fail_after(5):
            assert await ws.recv() == "a"
        await client_close(ws, 4000, "client done")
    assert records["peer-close-open"] == (None, None)
    assert records["peer-close"] == (4000, "client done")


# ---- the handshake request -----------------------------------------------------------------


async def test_request_path_query_headers_path_params() -> None:
    async with app.test_server() as server:
        url = server.ws_url("/rooms/lobby?a=1&a=2&b=x%20y")
        headers = {"X-Custom": "yes", "Cookie": "session=abc; other=1"}
        async with ws_connect(url, additional_headers=headers) as ws:
            with anyio.fail_after(5):
                info = json.loads(await ws.recv())
    assert info["path"] == "/rooms/lobby"
    assert info["socket_path"] == "/rooms/lobby"
    assert info["room"] == "lobby"
    assert info["query_a"] == ["1", "2"]
    assert info["query_b"] == "x y"
    assert info["header"] == "yes"
    assert info["header_upper"] == "yes"
    assert info["cookie"] == "abc"
    assert info["method"] == "GET"
    assert info["scheme"] == "ws"
    assert info["client_host"] == "127.0.0.1"
    assert info["url"] == f"ws://127.0.0.1:{server.port}/rooms/lobby?a=1&a=2&b=x%20y"


async def test_typed_path_param() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/items/42")) as ws:
            with anyio.fail_after(5):
                assert await ws.recv() == "int:42"
        info = await handshake_refusal(server.ws_url("/items/abc"))
        assert info.status_code == 404


# ---- handshake control ---------------------------------------------------------------------


async def test_reject_with_status_and_body() -> None:
    async with app.test_server() as server:
        info = await handshake_refusal(server.ws_url("/reject-401"))
    assert info.status_code == 401
    assert info.body == b"no"


async def test_raise_handshake_rejected_before_first_yield() -> None:
    async with app.test_server() as server:
        info = await handshake_refusal(server.ws_url("/raise-403"))
    assert info.status_code == 403


async def test_raise_handshake_rejected_with_headers_from_coroutine() -> None:
    async with app.test_server() as server:
        info = await handshake_refusal(server.ws_url("/raise-in-coroutine"))
        assert info.status_code == 401
        assert info.headers["www-authenticate"] == "Token"
        assert info.body == b"bad token"
        async with ws_connect(server.ws_url("/raise-in-coroutine?token=secret")) as ws:
            with anyio.fail_after(5):
                assert await ws.recv() == "welcome"


async def test_accept_with_subprotocol() -> None:
    async with app.test_server() as server:
        url = server.ws_url("/subprotocol")
        async with ws_connect(url, subprotocols=["chat", "superchat"]) as ws:
            assert ws.subprotocol == "chat"
            with anyio.fail_after(5):
                assert await ws.recv() == "chose chat"
    assert records["offered"] == ("chat", "superchat")


async def test_accept_with_subprotocol_not_offered_is_a_handler_error() -> None:
    # accept() raises ValueError in the handler: like any handler error, the socket is
    # accepted (without a subprotocol) and closed with 1011.
    async with (
        app.test_server() as server,
        ws_connect(server.ws_url("/subprotocol"), subprotocols=["other"]) as ws,
    ):
        assert ws.subprotocol is None
        received, code, _ = await drain(ws)
    assert received == []
    assert code == 1011


async def test_accept_with_extra_headers() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/accept-headers")) as ws:
        assert ws.response.headers["x-server"] == "spikard"
        with anyio.fail_after(5):
            assert await ws.recv() == "hi"


async def test_unknown_websocket_path_is_404() -> None:
    async with app.test_server() as server:
        info = await handshake_refusal(server.ws_url("/nowhere"))
    assert info.status_code == 404
