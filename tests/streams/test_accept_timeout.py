"""``WebSocketConfig.accept_timeout``: no client is held in the handshake by a silent handler.

A handler that neither accepts nor refuses in time is cancelled, the client gets 500 (never
an accept made for it), and one WARNING names the route and the fix. Handlers that answer in
time, however long they run afterwards, are not touched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest

from spikard import (
    HandshakeRejected,
    Request,
    Response,
    Spikard,
    WebSocket,
    WebSocketConfig,
    WebSocketMessage,
    WebSocketResponse,
)

pytestmark = pytest.mark.anyio

TIMEOUT = 0.3


def build_app(cleanups: list[str]) -> Spikard:
    app = Spikard(websocket=WebSocketConfig(accept_timeout=TIMEOUT))

    @app.websocket("/rooms/{room}/slow")
    async def slow(socket: WebSocket) -> None:
        try:
            await anyio.sleep(30)  # waits on "other events" before accepting
            await socket.accept()
        finally:
            cleanups.append("slow")

    @app.websocket("/push")
    async def push(socket: WebSocket) -> AsyncIterator[str]:
        await anyio.sleep(30)  # a generator that waits before its first yield
        yield "late"

    @app.websocket("/accepted")
    async def accepted(socket: WebSocket) -> None:
        await socket.accept()
        await anyio.sleep(3 * TIMEOUT)  # long after accept_timeout: not its business
        await socket.send("still here")
        await socket.receive()

    @app.websocket("/reader")
    async def reader(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket:  # the first read accepts
            yield message

    @app.websocket("/refuses")
    async def refuses(socket: WebSocket) -> None:
        await anyio.sleep(TIMEOUT / 3)
        await socket.reject(401, "no")

    @app.websocket("/shim")
    def shim(socket: WebSocket) -> WebSocketResponse:
        async def on_connect() -> None:
            await anyio.sleep(30)

        return WebSocketResponse(on_connect=on_connect, on_message=lambda message: None)

    return app


async def expect_500(app: Spikard, path: str) -> float:
    async with app.test_server() as server:
        started = time.monotonic()
        with pytest.raises(HandshakeRejected) as refused:
            async with server.connect(path, timeout=5):
                pass
        elapsed = time.monotonic() - started
    assert refused.value.status_code == 500
    return elapsed


async def test_a_handler_that_waits_before_accepting_gets_500_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cleanups: list[str] = []
    app = build_app(cleanups)
    with caplog.at_level(logging.WARNING, logger="spikard.websocket"):
        elapsed = await expect_500(app, "/rooms/a/slow")
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 2
    assert cleanups == ["slow"]  # cancelled: its finally ran
    warnings = [r for r in caplog.records if "accept_timeout" in r.getMessage()]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING
    assert "/rooms/{room}/slow" in message
    assert "await socket.accept()" in message


async def test_a_generator_that_waits_before_its_first_yield_gets_500() -> None:
    await expect_500(build_app([]), "/push")


async def test_a_slow_on_connect_gets_500() -> None:
    await expect_500(build_app([]), "/shim")


async def test_handlers_that_answer_in_time_are_left_alone() -> None:
    app = build_app([])
    async with app.test_server() as server:
        async with server.connect("/accepted", timeout=5) as ws:
            assert await ws.receive_text() == "still here"
        async with server.connect("/reader", timeout=5) as ws:
            await anyio.sleep(2 * TIMEOUT)
            await ws.send("echo")
            assert await ws.receive_text() == "echo"
        with pytest.raises(HandshakeRejected) as refused:
            async with server.connect("/refuses", timeout=5):
                pass
        assert refused.value.status_code == 401


async def test_handshake_middleware_time_counts_and_the_500_goes_through_it() -> None:
    app = build_app([])
    seen: list[int] = []

    @app.middleware
    async def record(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        seen.append(response.status_code)
        return response

    await expect_500(app, "/rooms/b/slow")
    assert seen == [500]


def test_accept_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="accept_timeout"):
        WebSocketConfig(accept_timeout=0)


async def test_the_bound_holds_over_tls_too() -> None:
    """TLS runs on the stream driver on every backend: the same hook, the same 500."""
    import ssl

    import trustme

    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    app = build_app([])
    async with app.test_server(ssl_context=context) as server:
        with pytest.raises(HandshakeRejected) as refused:
            async with server.connect("/push", timeout=5):
                pass
        assert refused.value.status_code == 500
        async with server.connect("/accepted", timeout=5) as ws:
            assert await ws.receive_text() == "still here"
