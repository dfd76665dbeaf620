"""Handler shape detection, decided once at registration (the ``spikard.app`` adapters).

This module uses ``from __future__ import annotations``, so every annotation here is a string;
handlers with evaluated annotations are compiled from source without the future import.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, cast

import anyio
import anyio.lowlevel
import pytest
from aiostream import pipe
from websockets.exceptions import ConnectionClosed

from spikard import (
    Headers,
    Request,
    RoutingError,
    Spikard,
    WebSocket,
    WebSocketMessage,
    WebSocketResponse,
)
from spikard.app.http_adapter import adapt_http_handler
from spikard.app.websocket_adapter import adapt_websocket_handler
from spikard.streams.callbacks import Callbacks

from ..helpers import ws_connect


class MyRequest(Request):
    """A Request subclass: annotating with it also asks for the request."""


class FakeSocket:
    """Stands in for a WebSocket: the adapters only pass it (or its request) on."""

    def __init__(self) -> None:
        self.request = Request("GET", "/fake?x=1", Headers([("host", "h")]))


def compile_without_future(source: str) -> Callable[..., Any]:
    """Define a function whose annotations are evaluated (no ``from __future__`` inherited)."""
    namespace: dict[str, Any] = {
        "Request": Request,
        "WebSocket": WebSocket,
        "AsyncIterator": AsyncIterator,
    }
    code = compile(textwrap.dedent(source), "<handler>", "exec", dont_inherit=True)
    exec(code, namespace)
    function = namespace["handler"]
    assert callable(function)
    return cast("Callable[..., Any]", function)


async def run_start(handler: Callable[..., Any]) -> tuple[FakeSocket, Any]:
    """Adapt ``handler`` and call its session start with a fake socket."""
    socket = FakeSocket()
    start = adapt_websocket_handler(handler)
    return socket, await start(cast("WebSocket", socket))


async def first_item(result: Any) -> Any:
    async with aclosing(result):
        return await anext(result)


# ---- which argument a WebSocket handler receives -------------------------------------------


async def test_generator_with_websocket_annotation_gets_the_socket() -> None:
    async def handler(socket: WebSocket) -> AsyncIterator[Any]:
        yield socket

    socket, result = await run_start(handler)
    assert await first_item(result) is socket


async def test_generator_without_annotation_gets_the_socket() -> None:
    async def handler(socket):  # type: ignore[no-untyped-def]
        yield socket

    socket, result = await run_start(handler)
    assert await first_item(result) is socket


async def test_generator_with_string_request_annotation_gets_the_request() -> None:
    async def handler(request: Request) -> AsyncIterator[Any]:
        yield request

    socket, result = await run_start(handler)
    assert await first_item(result) is socket.request


async def test_evaluated_request_annotation_gets_the_request() -> None:
    handler = compile_without_future(
        """
        async def handler(request: Request) -> AsyncIterator[object]:
            yield request
        """
    )
    assert handler.__annotations__["request"] is Request
    socket, result = await run_start(handler)
    assert await first_item(result) is socket.request


async def test_evaluated_websocket_annotation_gets_the_socket() -> None:
    handler = compile_without_future(
        """
        def handler(socket: WebSocket):
            return socket.items
        """
    )
    socket = FakeSocket()
    items = _items("a")
    socket.items = items  # type: ignore[attr-defined]
    start = adapt_websocket_handler(handler)
    assert await start(cast("WebSocket", socket)) is items


async def test_request_subclass_annotation_gets_the_request() -> None:
    async def handler(request: MyRequest) -> AsyncIterator[Any]:
        yield request

    socket, result = await run_start(handler)
    assert await first_item(result) is socket.request


async def test_unresolvable_hints_fall_back_to_the_name() -> None:
    async def handler(request: Request, extra: UndefinedName = None) -> AsyncIterator[Any]:  # type: ignore[name-defined]  # noqa: F821
        yield request

    socket, result = await run_start(handler)
    assert await first_item(result) is socket.request


async def test_dotted_string_annotation_falls_back_to_the_last_name() -> None:
    async def handler(request, extra=None):  # type: ignore[no-untyped-def]
        yield request

    handler.__annotations__ = {"request": "spikard.Request", "extra": "Nope"}
    socket, result = await run_start(handler)
    assert await first_item(result) is socket.request


async def test_callback_handler_with_request_annotation() -> None:
    def handler(request: Request) -> WebSocketResponse:
        assert isinstance(request, Request)
        return WebSocketResponse(on_message=lambda m: m)

    _, result = await run_start(handler)
    assert isinstance(result, WebSocketResponse)
    assert isinstance(result, Callbacks)


# ---- what a WebSocket handler returns ------------------------------------------------------


def _upper(text: str, *_: str) -> str:  # aiostream's map typing wants (arg, /, *args)
    return text.upper()


async def _items(*values: str) -> AsyncIterator[str]:
    for value in values:
        yield value


async def test_plain_function_returning_async_iterable() -> None:
    def handler(socket: WebSocket) -> AsyncIterator[str]:
        return _items("a", "b")

    _, result = await run_start(handler)
    assert [item async for item in result] == ["a", "b"]


async def test_coroutine_function_returning_async_iterable_is_awaited() -> None:
    async def handler(socket: WebSocket) -> AsyncIterator[str]:
        await anyio.lowlevel.checkpoint()
        return _items("c")

    _, result = await run_start(handler)
    assert [item async for item in result] == ["c"]


async def test_coroutine_function_returning_none() -> None:
    async def handler(socket: WebSocket) -> None:
        return None

    _, result = await run_start(handler)
    assert result is None


async def test_aiostream_pipe_is_kept_as_an_iterable_not_awaited() -> None:
    def handler(socket: WebSocket) -> Any:
        return pipe.map(_upper)(_items("x", "y"))  # what `socket | pipe.map(...)` does

    _, result = await run_start(handler)
    async with result.stream() as streamer:
        assert [item async for item in streamer] == ["X", "Y"]


async def test_returning_something_else_is_a_type_error() -> None:
    def handler(socket):  # type: ignore[no-untyped-def]  # no annotation: the call tells
        return 3

    with pytest.raises(TypeError, match="returned 'int'"):
        await run_start(handler)


def test_a_return_annotation_that_sends_nothing_is_refused_at_registration() -> None:
    def handler(socket: WebSocket) -> int:
        return 3  # pragma: no cover

    with pytest.raises(RoutingError, match="annotated to return 'int', which sends no"):
        adapt_websocket_handler(handler)


def test_handler_without_parameters_is_rejected_at_registration() -> None:
    async def handler() -> None:
        return None  # pragma: no cover

    with pytest.raises(RoutingError):
        adapt_websocket_handler(handler)
    with pytest.raises(RoutingError):
        Spikard().add_websocket_route("/x", handler)


def test_non_callable_is_rejected() -> None:
    with pytest.raises((RoutingError, TypeError)):
        adapt_websocket_handler(cast("Any", 42))
    with pytest.raises(RoutingError):
        adapt_http_handler(cast("Any", "nope"), ())


# ---- end to end ----------------------------------------------------------------------------

app = Spikard()


@app.websocket("/request-generator")
async def request_generator(request: Request) -> AsyncIterator[str]:
    yield f"{type(request).__name__} {request.path} {request.query_params.get('q')}"


@app.websocket("/sync-returns-generator")
def sync_returns_generator(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async def gen() -> AsyncIterator[WebSocketMessage]:
        async for message in socket:
            yield message

    return gen()


def _bracket(message: WebSocketMessage, *_: WebSocketMessage) -> WebSocketMessage:
    return WebSocketMessage.text(f"<{message.as_text()}>")


@app.websocket("/async-returns-pipe")
async def async_returns_pipe(socket: WebSocket) -> Any:
    await socket.accept()
    return socket | pipe.map(_bracket)


@app.websocket("/bad-return")
def bad_return(socket: WebSocket) -> object:
    return object()


@app.websocket("/callbacks-with-socket")
def callbacks_with_socket(socket: WebSocket) -> WebSocketResponse:
    return WebSocketResponse(on_message=lambda m: WebSocketMessage.text(socket.path))


async def test_request_annotated_generator_end_to_end() -> None:
    async with (
        app.test_server() as server,
        ws_connect(server.ws_url("/request-generator?q=7")) as ws,
    ):
        with anyio.fail_after(5):
            assert await ws.recv() == "Request /request-generator 7"


async def test_sync_function_returning_generator_end_to_end() -> None:
    async with (
        app.test_server() as server,
        ws_connect(server.ws_url("/sync-returns-generator")) as ws,
    ):
        with anyio.fail_after(5):
            await ws.send("s")
            assert await ws.recv() == "s"


async def test_coroutine_returning_pipe_end_to_end() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/async-returns-pipe")) as ws:
        with anyio.fail_after(5):
            await ws.send("p")
            assert await ws.recv() == "<p>"


async def test_bad_return_closes_1011() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/bad-return")) as ws:
            with anyio.fail_after(5), pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1011


async def test_callbacks_from_a_socket_annotated_handler() -> None:
    async with (
        app.test_server() as server,
        ws_connect(server.ws_url("/callbacks-with-socket")) as ws,
    ):
        with anyio.fail_after(5):
            await ws.send("?")
            assert await ws.recv() == "/callbacks-with-socket"


# ---- HTTP handlers -------------------------------------------------------------------------


def make_request(path: str, params: dict[str, Any]) -> Request:
    request = Request("GET", path, Headers([("host", "h")]))
    request.path_params = params
    return request


async def test_http_handler_without_parameters() -> None:
    endpoint = adapt_http_handler(lambda: "plain", ())
    response = await endpoint(make_request("/", {}))
    assert response.body == b"plain"


async def test_http_handler_with_request() -> None:
    def handler(req: Request) -> str:
        return req.path

    response = await adapt_http_handler(handler, ())(make_request("/p", {}))
    assert response.body == b"/p"


async def test_http_handler_with_path_params_as_keywords() -> None:
    async def handler(id: int, name: str) -> str:
        return f"{id!r} {name!r}"

    endpoint = adapt_http_handler(handler, ("id", "name"))
    response = await endpoint(make_request("/", {"id": 3, "name": "n"}))
    assert response.body == b"3 'n'"


async def test_http_handler_with_request_and_path_params() -> None:
    async def handler(request: Request, id: int) -> dict[str, Any]:
        return {"path": request.path, "id": id}

    endpoint = adapt_http_handler(handler, ("id",))
    response = await endpoint(make_request("/i/3", {"id": 3}))
    assert response.body == b'{"path":"/i/3","id":3}'


async def test_http_handler_with_var_keyword_gets_every_param() -> None:
    def handler(**params: Any) -> dict[str, Any]:
        return params

    endpoint = adapt_http_handler(handler, ("a", "b"))
    response = await endpoint(make_request("/", {"a": 1, "b": "2"}))
    assert response.body == b'{"a":1,"b":"2"}'


async def test_http_handler_taking_some_params_only() -> None:
    def handler(request: Request, b: str) -> str:
        return f"{b} {sorted(request.path_params)}"

    endpoint = adapt_http_handler(handler, ("a", "b"))
    response = await endpoint(make_request("/", {"a": 1, "b": "x"}))
    assert response.body == b"x ['a', 'b']"


@app.websocket("/accepts-then-returns-callbacks")
async def accepts_then_returns_callbacks(socket: WebSocket) -> WebSocketResponse:
    await socket.accept()
    return WebSocketResponse(on_message=lambda m: m)


async def test_accepting_then_returning_callbacks_closes_1011() -> None:
    # A misuse the runner detects (RuntimeError "must not accept the socket"): like any
    # handler error it should close the accepted socket with 1011, not escape and cut TCP.
    async with (
        app.test_server() as server,
        ws_connect(server.ws_url("/accepts-then-returns-callbacks")) as ws,
    ):
        with anyio.fail_after(5), pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1011
