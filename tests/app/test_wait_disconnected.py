"""``Request.wait_disconnected()``: a handler told that its client left before the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import Headers, PlainTextResponse, Request, Spikard, StreamingResponse

from ..helpers import read_all, read_until

pytestmark = pytest.mark.anyio
BOUND = 5.0


def long_poll_app(seen: list[object], reached: anyio.Event) -> Spikard:
    app = Spikard()

    @app.route("/poll", methods=["GET", "POST"])
    async def poll(request: Request) -> PlainTextResponse:
        body = await request.body()
        reached.set()
        with anyio.move_on_after(0.3):
            seen.append(await request.wait_disconnected())
            return PlainTextResponse("gone")
        seen.append("answered")
        return PlainTextResponse(b"waited " + body)

    @app.get("/after")
    async def after(request: Request) -> PlainTextResponse:
        async def later() -> None:
            seen.append(await request.wait_disconnected())

        app.state.group.start_soon(later)
        return PlainTextResponse("now")

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def ticks() -> AsyncIterator[str]:
            while True:
                yield "tick"
                await anyio.sleep(0.01)

        async def watch() -> None:
            seen.append(await request.wait_disconnected())

        app.state.group.start_soon(watch)
        return StreamingResponse(ticks())

    return app


@pytest.mark.parametrize(
    "head",
    [
        b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /poll HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
    ],
    ids=["get", "content-length", "chunked"],
)
async def test_the_handler_is_told_when_its_client_leaves(head: bytes) -> None:
    seen: list[object] = []
    reached = anyio.Event()
    app = long_poll_app(seen, reached)
    async with app.test_server() as server:
        with anyio.fail_after(BOUND):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(head)
                await reached.wait()
            while not seen:
                await anyio.sleep(0.01)
    assert seen == [True]


async def test_a_client_that_stays_gets_its_answer_and_the_next_pipelined_one() -> None:
    seen: list[object] = []
    reached = anyio.Event()
    app = long_poll_app(seen, reached)
    async with app.test_server() as server:
        with anyio.fail_after(BOUND):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(b"POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
                await reached.wait()
                await stream.send(b"GET /poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = await read_all(stream)
    assert seen == ["answered", "answered"]  # pipelined bytes are no departure
    assert data.count(b"HTTP/1.1 200") == 2
    assert b"waited hi" in data


async def test_after_the_response_the_wait_ends_with_false() -> None:
    seen: list[object] = []
    app = long_poll_app(seen, anyio.Event())
    async with anyio.create_task_group() as group:
        app.state.group = group
        async with app.test_server() as server:
            with anyio.fail_after(BOUND):
                async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                    await stream.send(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
                    await read_until(stream, b"now")
                    while not seen:
                        await anyio.sleep(0.01)
                    # the connection goes on serving
                    await stream.send(b"GET /poll HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = await read_all(stream)
    assert seen == [False, "answered"]
    assert data.endswith(b"waited ")


async def test_a_streamed_response_and_a_waiting_handler_share_the_watch() -> None:
    seen: list[object] = []
    app = long_poll_app(seen, anyio.Event())
    async with anyio.create_task_group() as group:
        app.state.group = group
        async with app.test_server() as server:
            with anyio.fail_after(BOUND):
                async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                    await stream.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
                    await read_until(stream, b"tick")
                while not seen:
                    await anyio.sleep(0.01)
    assert seen == [True]


async def test_a_request_made_by_hand_is_never_told() -> None:
    request = Request("GET", "/", Headers())
    with anyio.fail_after(1):
        assert await request.wait_disconnected() is False
