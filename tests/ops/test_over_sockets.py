"""The operators in handlers, over real loopback sockets with the real ``websockets`` client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from websockets.exceptions import ConnectionClosedError

from spikard import Spikard, WebSocket, WebSocketMessage, ops

from ..helpers import ws_connect

pytestmark = pytest.mark.anyio

TIMEOUT = 10


async def recv(client: Any) -> Any:
    with anyio.fail_after(TIMEOUT):
        return await client.recv()


async def drain(client: Any) -> tuple[list[Any], tuple[int, str]]:
    """Everything the client still gets, and the close code and reason that end it."""
    received = []
    with anyio.fail_after(TIMEOUT):
        try:
            while True:
                received.append(await client.recv())
        except ConnectionClosedError as closed:
            frame = closed.rcvd
    assert frame is not None
    return received, (frame.code, frame.reason)


async def closed_with(client: Any) -> tuple[int, str]:
    received, close = await drain(client)
    assert received == []
    return close


async def test_a_flooding_client_is_closed_with_1008() -> None:
    app = Spikard()

    @app.websocket("/limited")
    def limited(socket: WebSocket) -> Any:
        return socket | ops.rate_limit(5, burst=3)

    async with app.test_server() as server, ws_connect(server.ws_url("/limited")) as client:
        try:
            for index in range(10):
                await client.send(f"m{index}")
        except ConnectionClosedError:
            pass  # the server may close before the flood is out
        echoes, close = await drain(client)
        assert echoes == ["m0", "m1", "m2"]
        assert close == (1008, "rate limit exceeded (5 messages/s, burst 3)")


async def test_a_client_within_the_limit_is_not_disturbed() -> None:
    app = Spikard()

    @app.websocket("/limited")
    def limited(socket: WebSocket) -> Any:
        return socket | ops.rate_limit(100, burst=2, on_exceed="delay")

    async with app.test_server() as server, ws_connect(server.ws_url("/limited")) as client:
        for index in range(6):
            await client.send(f"m{index}")
        assert [await recv(client) for _ in range(6)] == [f"m{index}" for index in range(6)]


async def test_an_idle_client_is_closed() -> None:
    app = Spikard()

    @app.websocket("/idle")
    def idle(socket: WebSocket) -> Any:
        return socket | ops.timeout(0.2, on_timeout="close")

    async with app.test_server() as server, ws_connect(server.ws_url("/idle")) as client:
        await client.send("still here")
        assert await drain(client) == (["still here"], (1008, "idle for 0.2 s"))


async def test_a_ticker_batches_updates_for_a_slow_client() -> None:
    app = Spikard()
    stopped = anyio.Event()

    async def prices() -> AsyncIterator[int]:
        try:
            for tick in range(10_000):
                await anyio.sleep(0.001)
                yield tick
        finally:
            stopped.set()

    @app.websocket("/ticker")
    async def ticker(socket: WebSocket) -> AsyncIterator[str]:
        async with prices() | ops.batch(50, 0.02) as updates:
            async for group in updates:
                yield json.dumps(group)

    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/ticker")) as client:
            groups = []
            for _ in range(5):
                groups.append(json.loads(await recv(client)))
                await anyio.sleep(0.05)  # a slow client
        flat = [tick for group in groups for tick in group]
        assert flat == list(range(len(flat)))  # in order, nothing lost or repeated
        assert all(1 <= len(group) <= 50 for group in groups)
        assert max(len(group) for group in groups) > 1
        with anyio.fail_after(TIMEOUT):
            await stopped.wait()  # the client left: the generator's finally ran


async def test_concurrent_lookups_with_a_limit_answer_in_order() -> None:
    app = Spikard()
    running = 0
    most = 0

    async def lookup(message: WebSocketMessage) -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            text = message.as_text() or ""
            await anyio.sleep(0.002 * (int(text) % 4))
            return f"{text}={int(text) ** 2}"
        finally:
            running -= 1

    @app.websocket("/lookup")
    def lookups(socket: WebSocket) -> Any:
        return socket | ops.map_concurrent(lookup, limit=4)

    async with app.test_server() as server, ws_connect(server.ws_url("/lookup")) as client:
        for number in range(20):
            await client.send(str(number))
        replies = [await recv(client) for _ in range(20)]
    assert replies == [f"{number}={number**2}" for number in range(20)]
    assert 1 < most <= 4


async def test_a_pipeline_of_operators_as_the_handler() -> None:
    app = Spikard()

    def as_json(group: list[WebSocketMessage]) -> str:
        return json.dumps([message.as_text() for message in group])

    @app.websocket("/pipeline")
    def pipeline(socket: WebSocket) -> Any:
        return socket | ops.rate_limit(1000, 1000) | ops.batch(10, 0.01) | ops.map(as_json)

    async with app.test_server() as server, ws_connect(server.ws_url("/pipeline")) as client:
        for index in range(5):
            await client.send(f"m{index}")
        seen: list[str] = []
        while len(seen) < 5:
            seen += json.loads(await recv(client))
        assert seen == [f"m{index}" for index in range(5)]


async def test_the_client_leaving_ends_a_pipeline_that_runs_tasks() -> None:
    app = Spikard()
    cleaned = anyio.Event()

    async def tagged(socket: WebSocket) -> AsyncIterator[str]:
        try:
            async for message in socket:
                yield f"tagged {message.as_text()}"
        finally:
            cleaned.set()

    @app.websocket("/buffered")
    def buffered(socket: WebSocket) -> Any:
        return tagged(socket) | ops.buffer(4) | ops.throttle(0.001)

    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/buffered")) as client:
            await client.send("a")
            assert await recv(client) == "tagged a"
        with anyio.fail_after(TIMEOUT):
            await cleaned.wait()


async def test_a_stage_that_runs_tasks_iterated_without_async_with_closes_with_1011() -> None:
    app = Spikard()

    async def same(message: WebSocketMessage) -> WebSocketMessage:
        return message

    @app.websocket("/wrong")
    async def wrong(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
        async for message in socket | ops.map_concurrent(same, 2):
            yield message  # pragma: no cover

    async with app.test_server() as server, ws_connect(server.ws_url("/wrong")) as client:
        assert await closed_with(client) == (1011, "internal error")


async def test_timing_operators_over_the_socket_need_no_async_with() -> None:
    app = Spikard()

    @app.websocket("/grouped")
    async def grouped(socket: WebSocket) -> AsyncIterator[str]:
        async for group in socket | ops.timeout(5) | ops.batch(3, 0.05):
            yield ",".join(message.as_text() or "" for message in group)

    async with app.test_server() as server, ws_connect(server.ws_url("/grouped")) as client:
        for index in range(7):
            await client.send(str(index))
        seen: list[str] = []
        while len(seen) < 7:
            seen += (await recv(client)).split(",")
        assert seen == [str(index) for index in range(7)]


async def test_a_server_shutdown_cancels_running_work_cleanly() -> None:
    app = Spikard()
    running: list[str] = []
    cancelled: list[str] = []

    async def slow(message: WebSocketMessage) -> str:
        running.append(message.as_text() or "")
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.append(message.as_text() or "")
        return ""  # pragma: no cover

    @app.websocket("/slow")
    def slow_lookups(socket: WebSocket) -> Any:
        return socket | ops.map_concurrent(slow, limit=2)

    async with app.test_server() as server, ws_connect(server.ws_url("/slow")) as client:
        await client.send("a")
        await client.send("b")
        await client.send("c")  # waits for a slot that never comes
        with anyio.fail_after(TIMEOUT):
            while len(running) < 2:
                await anyio.sleep(0.01)
        # Leaving the test server shuts it down: the session, and the work, are cancelled.
    assert sorted(cancelled) == ["a", "b"]
    assert running == ["a", "b"]
