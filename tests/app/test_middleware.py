"""Middleware around HTTP requests and WebSocket handshakes, and exception handlers."""

from __future__ import annotations

import http.client
import logging
from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import (
    HandshakeRejected,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    Request,
    Response,
    RoutingError,
    Spikard,
    WebSocket,
    WebSocketMessage,
    WebSocketResponse,
)
from spikard.app.middleware import CallNext
from tests.helpers import handshake_refusal, ws_connect


def fetch(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.msg, response.read()
    finally:
        connection.close()


async def get(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    return await anyio.to_thread.run_sync(fetch, port, path, method, headers)


# ---- HTTP --------------------------------------------------------------------------------


async def test_first_registered_is_outermost_and_sees_the_final_response() -> None:
    app = Spikard()
    trace: list[str] = []

    @app.middleware
    async def outer(request: Request, call_next: CallNext) -> Response:
        trace.append("outer in")
        response = await call_next(request)
        trace.append(f"outer out {response.headers.get('x-inner')}")
        response.headers["x-outer"] = "1"
        return response

    async def inner(request: Request, call_next: CallNext) -> Response:
        trace.append("inner in")
        response = await call_next(request)
        trace.append("inner out")
        response.headers["x-inner"] = "1"
        return response

    assert app.middleware(inner) is inner

    @app.get("/")
    async def index(request: Request) -> str:
        trace.append("handler")
        return "hello"

    async with app.test_server() as server:
        status, headers, body = await get(server.port, "/")
    assert (status, body) == (200, b"hello")
    assert headers["x-outer"] == "1"
    assert headers["x-inner"] == "1"
    assert trace == ["outer in", "inner in", "handler", "inner out", "outer out 1"]


async def test_a_middleware_may_answer_without_the_handler() -> None:
    app = Spikard()
    called = []

    @app.middleware
    async def require_token(request: Request, call_next: CallNext) -> Response:
        if request.headers.get("authorization") != "Bearer s3cret":
            return PlainTextResponse("no token", 401, {"www-authenticate": "Bearer"})
        return await call_next(request)

    @app.get("/private")
    async def private(request: Request) -> str:
        called.append(True)
        return "secret"

    async with app.test_server() as server:
        refused = await get(server.port, "/private")
        allowed = await get(server.port, "/private", headers={"Authorization": "Bearer s3cret"})
    assert refused[0] == 401
    assert refused[1]["www-authenticate"] == "Bearer"
    assert allowed[0] == 200
    assert allowed[2] == b"secret"
    assert called == [True]


async def test_middleware_wraps_not_found_and_handler_errors_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Spikard()
    seen: list[int] = []

    @app.middleware
    async def record(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        seen.append(response.status_code)
        return response

    @app.get("/boom")
    async def boom(request: Request) -> str:
        raise RuntimeError("boom")

    async with app.test_server() as server:
        assert (await get(server.port, "/nowhere"))[0] == 404
        assert (await get(server.port, "/boom"))[0] == 500
        assert (await get(server.port, "/boom", "POST"))[0] == 405
    assert seen == [404, 500, 405]
    assert "HTTP handler for GET /boom raised" in caplog.text


async def test_a_raising_middleware_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    app = Spikard()

    @app.middleware
    async def broken(request: Request, call_next: CallNext) -> Response:
        raise KeyError("missing")

    @app.get("/")
    async def index(request: Request) -> str:
        return "never"

    async with app.test_server() as server:
        status, _, body = await get(server.port, "/")
        status_again, _, _ = await get(server.port, "/")
    assert (status, body, status_again) == (500, b"Internal Server Error", 500)
    assert caplog.text.count("KeyError") >= 2


async def test_a_middleware_that_returns_no_response_is_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Spikard()

    @app.middleware
    async def wrong(request: Request, call_next: CallNext) -> Response:
        await call_next(request)
        return "text"  # type: ignore[return-value]

    @app.get("/")
    async def index(request: Request) -> str:
        return "hi"

    async with app.test_server() as server:
        assert (await get(server.port, "/"))[0] == 500
    assert "returned 'str', not a Response" in caplog.text


def test_registration_checks_the_middleware_shape() -> None:
    app = Spikard()

    def sync_middleware(request: Request, call_next: CallNext) -> Response:
        raise AssertionError  # pragma: no cover

    async def one_argument(request: Request) -> Response:
        raise AssertionError  # pragma: no cover

    with pytest.raises(RoutingError, match="must be an async function"):
        app.middleware(sync_middleware)  # type: ignore[type-var]
    with pytest.raises(RoutingError, match="two arguments"):
        app.middleware(one_argument)  # type: ignore[type-var]
    with pytest.raises(RoutingError, match="not callable"):
        app.middleware("nope")  # type: ignore[type-var]

    class Good:
        async def __call__(self, request: Request, call_next: CallNext) -> Response:
            return await call_next(request)

    good = Good()
    assert app.middleware(good) is good


# ---- exception handlers --------------------------------------------------------------------


class OutOfStock(LookupError):
    pass


async def test_exception_handlers_by_type_most_specific_wins() -> None:
    app = Spikard()

    @app.exception_handler(LookupError)
    async def lookup(request: Request, exc: LookupError) -> Response:
        return JSONResponse({"error": "lookup", "path": request.path}, 404)

    @app.exception_handler(OutOfStock)
    def out_of_stock(request: Request, exc: OutOfStock) -> dict[str, str]:
        return {"error": f"out of stock: {exc}"}

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return JSONResponse({"detail": exc.detail}, exc.status_code, exc.headers)

    @app.get("/key")
    async def key(request: Request) -> str:
        raise KeyError("k")

    @app.get("/stock")
    async def stock(request: Request) -> str:
        raise OutOfStock("socks")

    @app.get("/teapot")
    async def teapot(request: Request) -> str:
        raise HTTPException(418, "short and stout", {"x-kind": "teapot"})

    @app.get("/json")
    async def bad_json(request: Request) -> str:
        raise ValueError("not handled")

    async with app.test_server() as server:
        key_response = await get(server.port, "/key")
        stock_response = await get(server.port, "/stock")
        teapot_response = await get(server.port, "/teapot")
        other = await get(server.port, "/json")
    assert key_response[0] == 404
    assert key_response[2] == b'{"error":"lookup","path":"/key"}'
    assert stock_response[0] == 200
    assert stock_response[2] == b'{"error":"out of stock: socks"}'
    assert teapot_response[0] == 418
    assert teapot_response[1]["x-kind"] == "teapot"
    assert teapot_response[2] == b'{"detail":"short and stout"}'
    assert other[0] == 500


async def test_exception_handlers_see_middleware_errors_and_a_raising_handler_is_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Spikard()

    @app.middleware
    async def picky(request: Request, call_next: CallNext) -> Response:
        if request.path == "/picky":
            raise PermissionError("no")
        return await call_next(request)

    @app.exception_handler(PermissionError)
    async def forbidden(request: Request, exc: PermissionError) -> Response:
        return PlainTextResponse("forbidden", 403)

    @app.exception_handler(ZeroDivisionError)
    async def broken(request: Request, exc: ZeroDivisionError) -> Response:
        raise RuntimeError("the handler itself fails")

    @app.get("/divide")
    async def divide(request: Request) -> str:
        return str(1 / 0)

    async with app.test_server() as server:
        assert (await get(server.port, "/picky"))[0] == 403
        assert (await get(server.port, "/divide"))[0] == 500
    assert "the exception handler for ZeroDivisionError raised" in caplog.text


def test_exception_handler_registration_is_checked() -> None:
    app = Spikard()
    with pytest.raises(RoutingError, match="Exception subclass"):
        app.add_exception_handler(int, lambda request, exc: None)  # type: ignore[arg-type]
    with pytest.raises(RoutingError, match=r"\(request, exc\)"):
        app.add_exception_handler(ValueError, lambda exc: None)  # type: ignore[arg-type,misc]


# ---- WebSocket handshakes ------------------------------------------------------------------


def ws_url(port: int, path: str) -> str:
    return f"ws://127.0.0.1:{port}{path}"


async def test_middleware_adds_headers_to_the_101_and_messages_flow() -> None:
    app = Spikard()
    seen: list[int] = []

    @app.middleware
    async def stamp(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        seen.append(response.status_code)
        response.headers["x-stamp"] = "on"
        return response

    @app.websocket("/echo")
    async def echo(socket: WebSocket) -> AsyncIterator[object]:
        async for message in socket:
            yield message

    async with (
        app.test_server() as server,
        ws_connect(ws_url(server.port, "/echo")) as websocket,
    ):
        assert websocket.response.headers["x-stamp"] == "on"
        for text in ("one", "two"):
            await websocket.send(text)
            assert await websocket.recv() == text
    assert seen == [101]


async def test_middleware_refuses_a_handshake_before_the_handler_runs() -> None:
    app = Spikard()
    started: list[bool] = []

    @app.middleware
    async def gatekeeper(request: Request, call_next: CallNext) -> Response:
        if request.query_params.get("token") != "ok":
            return PlainTextResponse("go away", 401)
        return await call_next(request)

    @app.websocket("/ws")
    async def handler(socket: WebSocket) -> AsyncIterator[str]:
        started.append(True)
        yield "welcome"

    async with app.test_server() as server:
        refusal = await handshake_refusal(ws_url(server.port, "/ws"))
        async with ws_connect(ws_url(server.port, "/ws?token=ok")) as websocket:
            assert await websocket.recv() == "welcome"
    assert refusal.status_code == 401
    assert refusal.body == b"go away"
    assert started == [True]


async def test_middleware_sees_and_changes_a_refusal_by_the_handler() -> None:
    app = Spikard()

    @app.middleware
    async def tag(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        response.headers["x-seen"] = str(response.status_code)
        return response

    @app.websocket("/closed")
    async def closed(socket: WebSocket) -> None:
        raise HandshakeRejected(409, "room is closed")

    async with app.test_server() as server:
        refusal = await handshake_refusal(ws_url(server.port, "/closed"))
    assert refusal.status_code == 409
    assert refusal.headers["x-seen"] == "409"
    assert refusal.body == b"room is closed"


async def test_middleware_turning_the_101_into_a_refusal_stops_the_handler() -> None:
    app = Spikard()
    handler_saw: list[str] = []

    @app.middleware
    async def overrule(request: Request, call_next: CallNext) -> Response:
        await call_next(request)
        return PlainTextResponse("maintenance", 503, {"retry-after": "30"})

    @app.websocket("/ws")
    async def handler(socket: WebSocket) -> None:
        try:
            await socket.accept()
            handler_saw.append("accepted")  # pragma: no cover
        except Exception as exc:
            handler_saw.append(type(exc).__name__)
            raise

    async with app.test_server() as server:
        refusal = await handshake_refusal(ws_url(server.port, "/ws"))
    assert refusal.status_code == 503
    assert refusal.headers["retry-after"] == "30"
    assert handler_saw == ["ConnectionClosedError"]


async def test_callback_handlers_pass_through_middleware() -> None:
    app = Spikard()

    @app.middleware
    async def stamp(request: Request, call_next: CallNext) -> Response:
        response = await call_next(request)
        response.headers["x-stamp"] = "cb"
        return response

    @app.websocket("/cb")
    def callbacks(request: Request) -> WebSocketResponse:
        async def on_message(message: WebSocketMessage) -> WebSocketMessage:
            return message

        return WebSocketResponse(on_message=on_message)

    async with app.test_server() as server, ws_connect(ws_url(server.port, "/cb")) as websocket:
        assert websocket.response.headers["x-stamp"] == "cb"
        await websocket.send("ping")
        assert await websocket.recv() == "ping"


async def test_exception_handlers_answer_a_handshake_that_raised_before_accepting() -> None:
    app = Spikard()

    class NotLoggedIn(Exception):
        pass

    @app.exception_handler(NotLoggedIn)
    async def login_first(request: Request, exc: NotLoggedIn) -> Response:
        return PlainTextResponse("log in first", 401)

    @app.websocket("/stream")
    async def stream(socket: WebSocket) -> AsyncIterator[str]:
        if "user" not in socket.request.cookies:
            raise NotLoggedIn
        yield "hi"

    @app.websocket("/callbacks")
    def callbacks(request: Request) -> WebSocketResponse:
        async def on_connect() -> None:
            raise NotLoggedIn

        async def on_message(message: WebSocketMessage) -> None:
            return None  # pragma: no cover

        return WebSocketResponse(on_connect=on_connect, on_message=on_message)

    async with app.test_server() as server:
        first = await handshake_refusal(ws_url(server.port, "/stream"))
        second = await handshake_refusal(ws_url(server.port, "/callbacks"))
        async with ws_connect(
            ws_url(server.port, "/stream"), additional_headers={"Cookie": "user=ann"}
        ) as websocket:
            assert await websocket.recv() == "hi"
    assert (first.status_code, first.body) == (401, b"log in first")
    assert (second.status_code, second.body) == (401, b"log in first")


async def test_an_exception_after_accept_still_closes_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Spikard()
    handled: list[Exception] = []

    @app.exception_handler(ValueError)
    async def value_error(request: Request, exc: ValueError) -> Response:
        handled.append(exc)
        return PlainTextResponse("bad", 400)

    @app.websocket("/later")
    async def later(socket: WebSocket) -> AsyncIterator[str]:
        yield "first"
        raise ValueError("after accept")

    caplog.set_level(logging.ERROR)
    async with (
        app.test_server() as server,
        ws_connect(ws_url(server.port, "/later")) as websocket,
    ):
        assert await websocket.recv() == "first"
        with anyio.fail_after(5):
            await websocket.wait_closed()
        assert websocket.close_code == 1011
    assert handled == []
    assert "WebSocket handler for /later raised" in caplog.text


async def test_a_handshake_middleware_that_raises_refuses_with_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Spikard()

    @app.middleware
    async def twice(request: Request, call_next: CallNext) -> Response:
        await call_next(request)
        return await call_next(request)

    @app.websocket("/ws")
    async def handler(socket: WebSocket) -> AsyncIterator[str]:
        yield "never seen"

    async with app.test_server() as server:
        refusal = await handshake_refusal(ws_url(server.port, "/ws"))
    assert refusal.status_code == 500
    assert "call_next was called twice" in caplog.text
