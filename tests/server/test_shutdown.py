"""Graceful shutdown: leaving ``test_server()``, open sockets get 1001, cleanup runs; a second
signal cuts the drain short."""

from __future__ import annotations

import signal
import time
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from spikard import HTTPConfig, Request, Spikard, WebSocket, WebSocketMessage, WebSocketResponse
from spikard.testing import TestServerInfo

from ..helpers import (
    close_code,
    parse_server_frames,
    read_all,
    read_until,
    upgrade_request,
    ws_connect,
)
from ..streams import Log
from . import serve_subprocess

app = Spikard(http=HTTPConfig(shutdown_timeout=5))
events = Log()


@app.websocket("/echo")
async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    try:
        async for message in socket:
            yield message
        events.append(("loop ended", socket.close_code))
    finally:
        events.append("finally")


@app.websocket("/producer")
async def producer(socket: WebSocket) -> AsyncIterator[str]:
    try:
        for i in range(100_000):
            yield f"tick {i}"
            await anyio.sleep(0.005)
    finally:
        events.append("producer finally")


@app.websocket("/idle")
async def idle(socket: WebSocket) -> None:
    await socket.accept()
    try:
        await anyio.sleep_forever()
    finally:
        events.append("idle finally")


@app.websocket("/callbacks")
async def callbacks(request: Request) -> WebSocketResponse:
    def on_close(frame: tuple[int, str] | None) -> None:
        events.append(("on_close", frame))

    return WebSocketResponse(on_message=lambda m: m, on_close=on_close)


@app.get("/slow")
async def slow() -> str:
    events.append("slow started")
    await anyio.sleep(0.3)
    return "finished"


@pytest.fixture(autouse=True)
def _clear() -> None:
    events.clear()


async def run_server(
    leave: anyio.Event, *, task_status: anyio.abc.TaskStatus[TestServerInfo]
) -> None:
    """Run the test server in its own task until ``leave`` is set, then leave the block."""
    async with app.test_server() as server:
        task_status.started(server)
        await leave.wait()
    events.append("server left")


async def test_leaving_test_server_closes_sockets_with_1001_and_runs_cleanup() -> None:
    leave = anyio.Event()
    async with anyio.create_task_group() as tg:
        server = await tg.start(run_server, leave)
        async with ws_connect(server.ws_url("/echo")) as ws:
            with anyio.fail_after(5):
                await ws.send("hi")
                assert await ws.recv() == "hi"
            leave.set()
            with anyio.fail_after(5), pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
            assert ws.close_reason == "server shutting down"
    assert events == [("loop ended", 1001), "finally", "server left"]


async def test_shutdown_stops_a_producing_handler() -> None:
    leave = anyio.Event()
    async with anyio.create_task_group() as tg:
        server = await tg.start(run_server, leave)
        async with ws_connect(server.ws_url("/producer")) as ws:
            with anyio.fail_after(5):
                assert await ws.recv() == "tick 0"
            leave.set()
            with anyio.fail_after(5), pytest.raises(ConnectionClosed):  # noqa: PT012
                for _ in range(100_000):
                    await ws.recv()
            assert ws.close_code == 1001
    assert events == ["producer finally", "server left"]


async def test_shutdown_cancels_a_handler_that_never_reads() -> None:
    leave = anyio.Event()
    async with anyio.create_task_group() as tg:
        server = await tg.start(run_server, leave)
        async with ws_connect(server.ws_url("/idle")) as ws:
            await anyio.sleep(0.05)
            leave.set()
            with anyio.fail_after(5), pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
    assert events == ["idle finally", "server left"]


async def test_shutdown_calls_on_close_of_callback_handlers() -> None:
    leave = anyio.Event()
    async with anyio.create_task_group() as tg:
        server = await tg.start(run_server, leave)
        async with ws_connect(server.ws_url("/callbacks")) as ws:
            with anyio.fail_after(5):
                await ws.send("x")
                assert await ws.recv() == "x"
            leave.set()
            with anyio.fail_after(5), pytest.raises(ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1001
    assert len(events) == 2
    assert events[0][0] == "on_close"
    assert events[0][1][0] == 1001
    assert events[1] == "server left"


async def test_idle_keep_alive_connection_is_closed_at_once() -> None:
    leave = anyio.Event()
    async with anyio.create_task_group() as tg:
        server = await tg.start(run_server, leave)
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            with anyio.fail_after(5):
                first = await read_until(stream, b"finished")
            assert first.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            leave.set()
            with anyio.fail_after(5):
                rest = await read_all(stream)
    assert rest == b""
    assert time.monotonic() - started < 2  # not the 5 s keep-alive timeout


async def test_request_in_flight_completes_during_shutdown() -> None:
    leave = anyio.Event()
    async with anyio.create_task_group() as tg:
        server = await tg.start(run_server, leave)
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await events.wait_for_item("slow started")
            leave.set()
            with anyio.fail_after(5):
                data = await read_all(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in head.lower()
    assert body == b"finished"


async def test_no_new_connections_after_the_server_left() -> None:
    async with app.test_server() as server:
        port = server.port
    with pytest.raises(OSError):  # noqa: PT011 (refused: the errno differs by backend)
        await anyio.connect_tcp("127.0.0.1", port)


async def test_second_signal_forces_exit() -> None:
    async with serve_subprocess() as served:
        stream = await anyio.connect_tcp("127.0.0.1", served.port)
        await stream.send(upgrade_request("/echo", port=served.port))
        head = await read_until(stream, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        # this client never answers the close frame: the drain would wait close_timeout (10 s)
        served.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(5):
            frames = parse_server_frames(await read_until(stream, b"shutting down"))
        assert frames[-1][0] == 0x8
        assert close_code(frames[-1][1]) == 1001
        await anyio.sleep(0.3)
        assert served.process.returncode is None  # still draining
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        await served.wait(timeout=5)
        assert time.monotonic() - started < 2
        with anyio.fail_after(2):
            assert await read_all(stream) == b""  # TCP was cut
        await stream.aclose()
    assert "second signal" in served.output.decode()


late_app = Spikard(http=HTTPConfig(shutdown_timeout=1))


@late_app.websocket("/late")
async def late(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    events.append("handshake pending")
    await anyio.sleep(0.3)  # e.g. an auth lookup before accepting
    async for message in socket:
        yield message


async def test_socket_accepted_during_shutdown_is_told_to_go_away() -> None:
    leave = anyio.Event()
    outcome: object = None

    async def serve(*, task_status: anyio.abc.TaskStatus[TestServerInfo]) -> None:
        async with late_app.test_server() as server:
            task_status.started(server)
            await leave.wait()

    async with anyio.create_task_group() as tg:
        server = await tg.start(serve)

        async def shut_down_while_handshake_pending() -> None:
            await events.wait_for_item("handshake pending")
            leave.set()

        tg.start_soon(shut_down_while_handshake_pending)
        try:
            async with ws_connect(server.ws_url("/late")) as ws:
                with anyio.fail_after(5), pytest.raises(ConnectionClosed):
                    await ws.recv()
                outcome = ws.close_code
        except InvalidStatus as exc:
            outcome = exc.response.status_code
    # either refused (503) or accepted and then closed as going away
    assert outcome in (503, 1001)


async def test_test_server_info() -> None:
    async with app.test_server() as server:
        assert server.host == "127.0.0.1"
        assert server.port > 0
        assert not server.secure
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.ws_url("/echo") == f"ws://127.0.0.1:{server.port}/echo"
        assert server.ws_url("echo") == f"ws://127.0.0.1:{server.port}/echo"
        assert server.http_url("x?y=1") == f"http://127.0.0.1:{server.port}/x?y=1"
        assert server.server is not None
        assert server.server.connection_count == 0
