"""Every driver releases what a bad peer would pin: the same tests on asyncio, trio and TLS.

Each test runs on both backends (``anyio_backend``) and, where the transport matters, over
plain TCP (asyncio: the asyncio driver; trio: the portable driver) and TLS (the portable
driver on both), for stream handlers and the callback shim alike. The clients are raw
sockets that misbehave on purpose: they stop reading, never answer, flood.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
import trustme

from spikard import (
    Request,
    Spikard,
    WebSocket,
    WebSocketConfig,
    WebSocketMessage,
    WebSocketResponse,
)
from spikard.testing import TestServerInfo

from ..helpers import masked_frame, read_until, upgrade_request

BIG = 1 << 20


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(params=["tcp", "tls"])
def tls(request: pytest.FixtureRequest, certificate_authority: trustme.CA) -> Any:
    """None for plain TCP, else (server context, client context)."""
    if request.param == "tcp":
        return None
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    return server_context, client_context


@asynccontextmanager
async def serving(app: Spikard, tls: Any) -> AsyncIterator[TestServerInfo]:
    async with app.test_server(ssl_context=None if tls is None else tls[0]) as server:
        yield server


async def raw_websocket_without_answer(
    server: TestServerInfo, path: str, tls: Any
) -> anyio.abc.ByteStream:
    """Connect and send the upgrade request; read nothing."""
    stream: anyio.abc.ByteStream
    if tls is None:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
    else:
        stream = await anyio.connect_tcp(
            "127.0.0.1", server.port, tls=True, ssl_context=tls[1], tls_standard_compatible=False
        )
    await stream.send(upgrade_request(path, port=server.port))
    return stream


async def raw_websocket(
    server: TestServerInfo, path: str, tls: Any, leftover: bytearray | None = None
) -> anyio.abc.ByteStream:
    """Open a WebSocket by hand; return the stream positioned after the 101.

    The bytes that came in the same read as the 101 go to ``leftover``.
    """
    stream = await raw_websocket_without_answer(server, path, tls)
    head = await read_until(stream, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    if leftover is not None:
        leftover += head.partition(b"\r\n\r\n")[2]
    return stream


async def read_on_until(stream: anyio.abc.ByteStream, data: bytearray, marker: bytes) -> bytes:
    """Read into ``data`` (what was read already) until ``marker`` is in it; return it all."""
    with anyio.fail_after(10):
        while marker not in data:
            data += await stream.receive()
    return bytes(data)


async def wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Poll ``condition`` until it holds; fail after ``seconds``; return the time it took."""
    start = anyio.current_time()
    with anyio.fail_after(seconds):
        while not condition():
            await anyio.sleep(0.05)
    return anyio.current_time() - start


def released(server: TestServerInfo) -> Callable[[], bool]:
    assert server.server is not None
    inner = server.server
    return lambda: inner.websocket_count == 0 and inner.connection_count == 0


def strict_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse unmasked server frames; fail on anything that is not a whole, valid frame."""
    frames = []
    position = 0
    while position < len(data):
        assert len(data) - position >= 2, "a partial frame header at the end"
        first, second = data[position], data[position + 1]
        assert first & 0x70 == 0, "reserved bits"
        assert not second & 0x80, "a masked server frame"
        length, offset = second & 0x7F, 2
        if length == 126:
            length, offset = int.from_bytes(data[position + 2 : position + 4], "big"), 4
        elif length == 127:
            length, offset = int.from_bytes(data[position + 2 : position + 10], "big"), 10
        end = position + offset + length
        assert end <= len(data), f"a frame cut short: {len(data) - position - offset} of {length}"
        frames.append((first & 0x0F, data[position + offset : end]))
        position = end
    return frames


# ---- a peer that stops reading while we write -----------------------------------------------


def flooding_app(**config: Any) -> Spikard:
    app = Spikard(websocket=WebSocketConfig(**config))

    @app.websocket("/stream")
    async def stream(socket: WebSocket) -> AsyncIterator[bytes]:
        async for _ in socket:
            for _ in range(64):  # 64 MiB: far more than socket buffers hold
                yield b"x" * BIG

    @app.websocket("/callbacks")
    async def callbacks(request: Request) -> WebSocketResponse:
        def on_message(message: WebSocketMessage) -> WebSocketMessage:
            return WebSocketMessage.binary(b"x" * (64 * BIG))  # one reply suffices

        return WebSocketResponse(on_message=on_message)

    @app.websocket("/echo")
    async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket:
            yield message

    return app


@pytest.mark.parametrize("path", ["/stream", "/callbacks"])
async def test_a_peer_that_stops_reading_is_released_by_keepalive(path: str, tls: Any) -> None:
    app = flooding_app(ping_interval=0.3, ping_timeout=0.6, write_timeout=30, close_timeout=5)
    async with serving(app, tls) as server:
        stream = await raw_websocket(server, path, tls)
        await stream.send(masked_frame(0x1, b"go"))  # then never read again
        took = await wait_for(released(server), 10)
        assert took < 5  # ping_interval + ping_timeout, plus heartbeat ticks
        await stream.aclose()


@pytest.mark.parametrize("path", ["/stream", "/callbacks"])
async def test_a_stalled_write_is_dropped_after_write_timeout_without_keepalive(
    path: str, tls: Any
) -> None:
    app = flooding_app(ping_interval=None, write_timeout=0.5, close_timeout=5)
    async with serving(app, tls) as server:
        stream = await raw_websocket(server, path, tls)
        await stream.send(masked_frame(0x1, b"go"))
        took = await wait_for(released(server), 10)
        assert took < 4
        await stream.aclose()


async def test_a_slow_but_steady_reader_is_never_dropped() -> None:
    app = flooding_app(ping_interval=None, write_timeout=0.4, close_timeout=5)
    async with serving(app, None) as server:
        stream = await raw_websocket(server, "/stream", None)
        await stream.send(masked_frame(0x1, b"go"))
        received = 0
        with anyio.fail_after(30):
            while received < 8 * BIG:  # well past the kernel buffers, at a trickle
                received += len(await stream.receive(256 * 1024))
                await anyio.sleep(0.02)
        assert server.server is not None
        assert server.server.websocket_count == 1  # still connected
        await stream.aclose()


# ---- the final close is bounded ----------------------------------------------------------------


def abandoning_app(**config: Any) -> Spikard:
    app = Spikard(websocket=WebSocketConfig(**config))

    @app.websocket("/abandon")
    async def abandon(socket: WebSocket) -> None:
        await socket.accept()
        with anyio.move_on_after(0.2):
            await socket.send(b"x" * (32 * BIG))  # the client reads nothing: abandoned

    @app.websocket("/after")
    async def after(socket: WebSocket) -> None:
        await socket.accept()
        with anyio.move_on_after(0.05):
            await socket.send(b"y" * (8 * BIG))  # cancelled while being written
        await socket.send("after")

    return app


async def test_a_handler_that_abandons_a_send_is_dropped_within_close_timeout(tls: Any) -> None:
    app = abandoning_app(ping_interval=None, write_timeout=60, close_timeout=0.5)
    async with serving(app, tls) as server:
        stream = await raw_websocket(server, "/abandon", tls)
        took = await wait_for(released(server), 10)
        assert took < 3  # the send's 0.2 s, close_timeout, heartbeat ticks
        await stream.aclose()


async def test_a_cancelled_send_leaves_whole_frames_on_the_wire(tls: Any) -> None:
    app = abandoning_app(ping_interval=None, close_timeout=2)
    async with serving(app, tls) as server:
        data = bytearray()
        stream = await raw_websocket(server, "/after", tls, data)
        await anyio.sleep(0.3)  # the send is cancelled while the kernel buffers are full
        with anyio.fail_after(20):
            while True:
                try:
                    data += await stream.receive(1 << 20)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
        frames = strict_frames(bytes(data))
        kinds = [(opcode, len(payload)) for opcode, payload in frames]
        # Either the whole cancelled frame went out, or none of it: never a part of it.
        assert kinds in ([(0x2, 8 * BIG), (0x1, 5), (0x8, 2)], [(0x1, 5), (0x8, 2)]), kinds
        assert frames[-2][1] == b"after"
        await stream.aclose()


# ---- bounded memory ----------------------------------------------------------------------------


async def count_messages(socket: WebSocket, wanted: int = 2000) -> str:
    count = 0
    async for _ in socket:
        count += 1
        if count == wanted:
            break
    return f"got {count}"


def lagging_app(gate: Callable[[], Awaitable[None]], **config: Any) -> Spikard:
    app = Spikard(websocket=WebSocketConfig(**config))

    @app.websocket("/late-accept")
    async def late_accept(socket: WebSocket) -> AsyncIterator[str]:
        await gate()  # deciding, before the accept: the client floods meanwhile
        yield await count_messages(socket)

    @app.websocket("/lagging")
    async def lagging(socket: WebSocket) -> AsyncIterator[str]:
        await socket.accept()
        await gate()
        yield await count_messages(socket)

    return app


async def flood(stream: anyio.abc.ByteStream, frame: bytes, count: int) -> None:
    with anyio.move_on_after(15):
        for _ in range(count // 100):
            await stream.send(frame * 100)


async def test_read_ahead_before_the_accept_is_bounded(tls: Any) -> None:
    release = anyio.Event()
    app = lagging_app(release.wait, ping_interval=None)
    async with serving(app, tls) as server, anyio.create_task_group() as tasks:
        assert server.server is not None
        stream = await raw_websocket_without_answer(server, "/late-accept", tls)
        tasks.start_soon(flood, stream, masked_frame(0x2, b""), 200_000)  # 1.2 MB of frames
        await anyio.sleep(1)
        held = server.server.buffered_bytes
        assert held <= 64 * 1024 + 320 * 1024  # read_size, plus one read
        release.set()
        reply = await read_until(stream, b"got 2000")
        assert b"HTTP/1.1 101" in reply
        assert b"got 2000" in reply
        tasks.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await stream.aclose()


async def test_the_process_wide_budget_bounds_lagging_connections() -> None:
    release = anyio.Event()
    limit = 256 * 1024
    app = lagging_app(release.wait, ping_interval=None, max_queue=4000, max_buffered_bytes=limit)
    payload = b"z" * 1024
    async with serving(app, None) as server, anyio.create_task_group() as tasks:
        assert server.server is not None
        streams = [await raw_websocket(server, "/lagging", None) for _ in range(4)]
        for stream in streams:
            tasks.start_soon(flood, stream, masked_frame(0x2, payload), 2000)
        await anyio.sleep(1.5)
        held = server.server.buffered_bytes
        # Without the budget each would hold its whole 2 MB (max_queue is 4000 messages).
        assert held <= limit + 4 * 320 * 1024, held
        release.set()
        for stream in streams:
            reply = await read_until(stream, b"got 2000")
            assert b"got 2000" in reply
        tasks.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            for stream in streams:
                await stream.aclose()
            await wait_for(
                lambda: server.server is not None and server.server.buffered_bytes == 0, 5
            )


# ---- timers, pings, logging ---------------------------------------------------------------------


async def test_a_connection_whose_timer_raises_is_closed_not_left_untimed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from spikard.connection.wire import WireConnection

    def broken(self: WireConnection, now: float) -> None:
        raise RuntimeError("timer bug")

    monkeypatch.setattr(WireConnection, "on_timer", broken)
    app = flooding_app(ping_interval=0.2, ping_timeout=0.2)
    async with serving(app, None) as server:
        early = bytearray()
        stream = await raw_websocket(server, "/echo", None, early)
        data = await read_on_until(stream, early, b"\x88")  # our close frame
        assert data.startswith(b"\x88\x10\x03\xf3"), data  # 1011, "internal error"
        await wait_for(released(server), 5)
        await stream.aclose()
    assert "RuntimeError: timer bug" in caplog.text


def pinging_app() -> Spikard:
    app = Spikard(websocket=WebSocketConfig(ping_interval=None))

    @app.websocket("/ping")
    async def ping(socket: WebSocket) -> AsyncIterator[str]:
        await socket.accept()
        pongs = [await socket.ping(bytes([index])) for index in range(32)]
        try:
            await socket.ping(b"one too many")
        except RuntimeError:
            yield "limit"
        try:
            await socket.ping(bytes([0]))
        except ValueError:
            yield "duplicate"
        async for message in socket:  # the client answers now
            assert message.as_text() == "answered"
            break
        for pong in pongs:
            with anyio.fail_after(2):
                await pong
        yield "all answered"

    return app


async def test_pings_are_bounded_and_their_pongs_awaitable() -> None:
    async with serving(pinging_app(), None) as server:
        early = bytearray()
        stream = await raw_websocket(server, "/ping", None, early)
        data = await read_on_until(stream, early, b"duplicate")
        assert b"limit" in data
        # A pong answers its ping and every ping before it.
        await stream.send(masked_frame(0xA, bytes([31])) + masked_frame(0x1, b"answered"))
        assert b"all answered" in await read_on_until(stream, bytearray(), b"all answered")
        await stream.aclose()


async def test_on_connect_raising_logs_its_type_at_warning_and_traceback_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    app = Spikard()

    @app.websocket("/auth")
    async def auth(request: Request) -> WebSocketResponse:
        def on_connect() -> None:
            raise PermissionError("no token")

        return WebSocketResponse(on_message=lambda m: m, on_connect=on_connect)

    with caplog.at_level(logging.DEBUG, "spikard.websocket"):
        async with serving(app, None) as server:
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            await stream.send(upgrade_request("/auth", port=server.port))
            assert (await read_until(stream, b"\r\n\r\n")).startswith(b"HTTP/1.1 403")
            await stream.aclose()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "PermissionError: no token" in warnings[0].getMessage()
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)


async def test_a_connection_paused_by_the_budget_keeps_its_keepalive() -> None:
    """Paused by the server-wide budget, not by its own lag: its pong deadline waits."""
    from ..helpers import ws_connect

    release = anyio.Event()
    app = lagging_app(
        release.wait,
        ping_interval=0.2,
        ping_timeout=0.3,
        max_queue=4000,
        max_buffered_bytes=64 * 1024,
    )
    async with (
        serving(app, None) as server,
        ws_connect(server.ws_url("/lagging")) as ws,
        anyio.create_task_group() as tasks,
    ):

        async def send_all() -> None:
            for _ in range(2000):
                await ws.send(b"z" * 1024)

        tasks.start_soon(send_all)
        await anyio.sleep(1.5)  # five ping intervals with reads paused by the budget
        release.set()
        with anyio.fail_after(10):
            assert await ws.recv() == "got 2000"
