"""The handshake phase of a stream handler: before it reads, sends or yields."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio

from spikard import Spikard, WebSocket, WebSocketMessage

from .helpers import read_until, upgrade_request, ws_connect


def app_that_never_accepts() -> tuple[Spikard, anyio.Event, anyio.Event]:
    """An app whose ``/slow`` handler never touches the socket (the handshake stays open),
    with events set when it starts and when it ends; ``/busy`` answers HTTP after 0.2 s."""
    app = Spikard()
    started = anyio.Event()
    finished = anyio.Event()

    @app.get("/busy")
    async def busy() -> str:
        await anyio.sleep(0.2)
        return "ok"

    @app.websocket("/slow")
    async def slow(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        started.set()
        try:
            await anyio.sleep_forever()
            yield WebSocketMessage.text("unreachable")
        finally:
            finished.set()

    return app, started, finished


async def test_client_leaving_before_accept_cancels_the_handler() -> None:
    app, started, finished = app_that_never_accepts()
    async with app.test_server() as server:
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            await stream.send(upgrade_request("/slow", port=server.port))
            await started.wait()
            await stream.aclose()
            await finished.wait()
            assert server.server is not None
            while server.server.connection_count:
                await anyio.sleep(0.01)


async def test_client_that_left_while_an_earlier_request_was_served_cancels_the_handler() -> None:
    """The client's EOF may be read while a keep-alive request before the handshake is still
    being answered: the handshake's departure watch must still see that it left."""
    app, started, finished = app_that_never_accepts()
    async with app.test_server() as server:
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            busy_request = b"GET /busy HTTP/1.1\r\nHost: x\r\n\r\n"
            await stream.send(busy_request + upgrade_request("/slow", port=server.port))
            await stream.send_eof()
            await started.wait()
            await finished.wait()
            await stream.aclose()


async def test_frames_sent_before_the_101_are_not_lost() -> None:
    app = Spikard()
    may_accept = anyio.Event()

    @app.websocket("/late")
    async def late(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        await may_accept.wait()
        async for message in socket:
            yield message

    async with app.test_server() as server:
        with anyio.fail_after(5):
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            # The request and a masked text frame "hi" in one write, before any answer.
            frame = bytes([0x81, 0x82, 1, 2, 3, 4, ord("h") ^ 1, ord("i") ^ 2])
            await stream.send(upgrade_request("/late", port=server.port) + frame)
            await anyio.sleep(0.05)
            may_accept.set()
            data = await read_until(stream, b"\x81\x02hi")
            assert data.startswith(b"HTTP/1.1 101 ")
            assert data.endswith(b"\x81\x02hi")
            await stream.aclose()


async def test_accepting_with_a_subprotocol_and_headers() -> None:
    app = Spikard()

    @app.websocket("/proto")
    async def proto(socket: WebSocket) -> AsyncIterator[str]:
        assert socket.subprotocols == ("v2.chat", "v1.chat")
        await socket.accept(subprotocol="v1.chat", headers={"x-server": "spikard"})
        yield socket.subprotocol or ""

    async with (
        app.test_server() as server,
        ws_connect(server.ws_url("/proto"), subprotocols=["v2.chat", "v1.chat"]) as ws,
    ):
        assert ws.subprotocol == "v1.chat"
        assert ws.response.headers["x-server"] == "spikard"
        assert await ws.recv() == "v1.chat"


async def test_a_first_read_and_a_first_send_racing_accept_once() -> None:
    app = Spikard()

    @app.websocket("/race")
    async def race(socket: WebSocket) -> None:
        received: list[WebSocketMessage] = []

        async def read_one() -> None:
            received.append(await socket.receive())

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(read_one)
            task_group.start_soon(socket.send, "hello")
        await socket.send(f"got {received[0].as_text()}")

    async with app.test_server() as server, ws_connect(server.ws_url("/race")) as ws:
        assert await ws.recv() == "hello"
        await ws.send("ping")
        assert await ws.recv() == "got ping"
