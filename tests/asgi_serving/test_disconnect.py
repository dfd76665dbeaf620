"""``http.disconnect`` for an ASGI app that waits before it responds (a long poll)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
import trustme

from spikard.asgi.serving import ASGIApp, Receive, Scope, Send

from ..helpers import read_all, read_until
from .serving import Running, serve

BOUND = 5.0


def long_poll(told: list[str], reached: anyio.Event) -> ASGIApp:
    """An app that reads its request, then waits in ``receive`` before it answers."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            if not message.get("more_body"):
                break
        if scope["path"] == "/fast":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"fast"})
            return
        reached.set()
        with anyio.move_on_after(float(scope["query_string"] or b"30")):
            told.append((await receive())["type"])
            return
        told.append("timeout")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waited"})

    return app


@asynccontextmanager
async def connected(running: Running) -> AsyncIterator[anyio.abc.ByteStream]:
    stream: anyio.abc.ByteStream = await anyio.connect_tcp("127.0.0.1", running.port)
    async with stream:
        yield stream


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        b"POST /poll HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        b"GET /poll HTTP/1.0\r\n\r\n",
    ],
    ids=["get", "content-length", "chunked", "http-1.0"],
)
async def test_a_client_leaving_before_the_response_is_told_to_the_app(
    request_bytes: bytes,
) -> None:
    told: list[str] = []
    reached = anyio.Event()
    async with serve(long_poll(told, reached)) as running:
        with anyio.fail_after(BOUND):
            async with connected(running) as stream:
                await stream.send(request_bytes)
                await reached.wait()
            while not told:
                await anyio.sleep(0.01)
    assert told == ["http.disconnect"]


async def test_a_half_closed_client_is_gone_as_under_uvicorn() -> None:
    told: list[str] = []
    reached = anyio.Event()
    async with serve(long_poll(told, reached)) as running:
        with anyio.fail_after(BOUND):
            stream = await anyio.connect_tcp("127.0.0.1", running.port)
            async with stream:
                await stream.send(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
                await reached.wait()
                await stream.send_eof()
                while not told:
                    await anyio.sleep(0.01)
    assert told == ["http.disconnect"]


async def test_a_client_that_stays_gets_the_late_response_and_keeps_alive() -> None:
    told: list[str] = []
    reached = anyio.Event()
    async with serve(long_poll(told, reached)) as running:
        with anyio.fail_after(BOUND):
            async with connected(running) as stream:
                await stream.send(b"GET /poll?0.2 HTTP/1.1\r\nHost: x\r\n\r\n")
                first = await read_until(stream, b"waited")
                await stream.send(b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                second = await read_all(stream)
    assert told == ["timeout"]
    assert first.startswith(b"HTTP/1.1 200")
    assert first.endswith(b"waited")
    assert second.startswith(b"HTTP/1.1 200")
    assert second.endswith(b"fast")


async def test_a_request_pipelined_behind_a_long_poll_is_kept_and_served_after_it() -> None:
    told: list[str] = []
    reached = anyio.Event()
    async with serve(long_poll(told, reached)) as running:
        with anyio.fail_after(BOUND):
            async with connected(running) as stream:
                await stream.send(b"GET /poll?0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
                await reached.wait()
                await stream.send(b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = await read_all(stream)
    assert told == ["timeout"]  # the pipelined bytes are not a departure
    assert data.count(b"HTTP/1.1 200") == 2
    assert data.index(b"waited") < data.index(b"fast")


async def test_the_app_told_of_a_departure_cannot_send_its_response() -> None:
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await receive()
        assert (await receive())["type"] == "http.disconnect"
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"late"})
        except OSError as exc:
            errors.append(exc)

    async with serve(app) as running:
        with anyio.fail_after(BOUND):
            async with connected(running) as stream:
                await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await anyio.sleep(0.05)
            while not errors:
                await anyio.sleep(0.01)
    assert isinstance(errors[0], OSError)


async def test_two_listeners_are_both_told() -> None:
    told: list[str] = []
    ready = anyio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await receive()

        async def listen() -> None:
            told.append((await receive())["type"])

        async with anyio.create_task_group() as group:
            group.start_soon(listen)
            group.start_soon(listen)
            ready.set()

    async with serve(app) as running:
        with anyio.fail_after(BOUND):
            async with connected(running) as stream:
                await stream.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await ready.wait()
                await anyio.sleep(0.05)
            while len(told) < 2:
                await anyio.sleep(0.01)
    assert told == ["http.disconnect", "http.disconnect"]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_over_tls_a_client_leaving_is_told_too() -> None:
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    told: list[str] = []
    reached = anyio.Event()
    async with serve(long_poll(told, reached), ssl_context=server_context) as running:
        with anyio.fail_after(BOUND):
            stream = await anyio.connect_tcp(
                "127.0.0.1", running.port, ssl_context=client_context, tls_standard_compatible=False
            )
            async with stream:
                await stream.send(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
                await reached.wait()
            while not told:
                await anyio.sleep(0.01)
    assert told == ["http.disconnect"]


async def test_starlettes_is_disconnected_polling_sees_the_client_leave() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    told: list[str] = []
    reached = anyio.Event()

    async def poll(request: StarletteRequest) -> PlainTextResponse:
        reached.set()
        with anyio.move_on_after(BOUND):
            while not await request.is_disconnected():
                await anyio.sleep(0.02)
            told.append("disconnected")
            return PlainTextResponse("gone")
        told.append("never noticed")
        return PlainTextResponse("timeout")

    app = Starlette(routes=[Route("/poll", poll)])
    async with serve(app, lifespan="off") as running:
        with anyio.fail_after(BOUND):
            async with connected(running) as stream:
                await stream.send(b"GET /poll HTTP/1.1\r\nHost: x\r\n\r\n")
                await reached.wait()
                await anyio.sleep(0.1)  # a few polls while the client is there
                assert told == []
            while not told:
                await anyio.sleep(0.01)
    assert told == ["disconnected"]
