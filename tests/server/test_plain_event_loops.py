"""The server under a plain ``asyncio.run`` and ``uvloop.run``, outside anyio's runner.

The pytest plugin and ``app.run()`` both tell anyio which event loop runs; a program that
starts the loop itself does not, and code that runs in transport callbacks (accepting a
connection, noticing a departed client) must still work there.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import anyio
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from spikard import Spikard, WebSocket, WebSocketMessage

from ..helpers import upgrade_request

try:
    import uvloop
except ImportError:  # the [test] extra does not install it: its runs are skipped
    uvloop = None  # type: ignore[assignment]

Runner = Callable[[Coroutine[Any, Any, None]], None]
RUNNERS = [
    pytest.param(asyncio.run, id="asyncio.run"),
    pytest.param(
        getattr(uvloop, "run", None),
        id="uvloop.run",
        marks=pytest.mark.skipif(uvloop is None, reason="uvloop is not installed"),
    ),
]


def make_app(seen: list[int], gone: anyio.Event | None = None) -> Spikard:
    app = Spikard()

    @app.websocket("/echo")
    async def echo(socket_: WebSocket) -> AsyncIterator[WebSocketMessage]:
        transport = socket_.connection._transport._transport  # type: ignore[attr-defined]
        raw = transport.get_extra_info("socket")
        seen.append(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        async for message in socket_:
            yield message

    @app.websocket("/slow")
    async def slow(socket_: WebSocket) -> None:
        try:
            await anyio.sleep(30)  # deciding, before accepting: the client leaves meanwhile
        finally:
            assert gone is not None
            gone.set()

    return app


@pytest.mark.parametrize("run", RUNNERS)
def test_echo_and_no_delay(run: Runner) -> None:
    seen: list[int] = []

    async def main() -> None:
        async with make_app(seen).test_server() as server:
            for _ in range(2):
                async with websockets.connect(server.ws_url("/echo")) as client:
                    await client.send("hello")
                    assert await client.recv() == "hello"
            with pytest.raises(InvalidStatus):
                await websockets.connect(server.ws_url("/nowhere"))

    run(main())
    assert seen == [1, 1]


@pytest.mark.parametrize("run", RUNNERS)
def test_a_client_that_leaves_before_the_accept_cancels_the_handler(run: Runner) -> None:
    async def main() -> None:
        gone = anyio.Event()
        async with make_app([], gone).test_server() as server:
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            await stream.send(upgrade_request("/slow", port=server.port))
            await anyio.sleep(0.05)
            await stream.aclose()
            with anyio.fail_after(5):
                await gone.wait()

    run(main())
