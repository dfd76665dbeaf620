"""Streamed response bodies over real sockets: framing, backpressure, departure, HEAD, errors.

A route that is an async generator streams; ``StreamingResponse`` takes any iterable. What
the client sees is asserted on the wire; what the generator saw (its ``finally``, how far it
got) through module-level records.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator

import anyio
import anyio.abc
import pytest

from spikard import HTTPConfig, Request, Spikard, StreamingResponse

from ..helpers import read_all, read_until

app = Spikard(http=HTTPConfig(write_timeout=0.5))
events: dict[str, anyio.Event] = {}
produced: dict[str, int] = {}


def record(name: str) -> anyio.Event:
    events[name] = anyio.Event()
    produced[name] = 0
    return events[name]


@app.get("/count")
async def count(request: Request) -> AsyncIterator[str]:
    for number in range(3):
        yield f"{number}\n"


@app.get("/sized")
async def sized(request: Request) -> StreamingResponse:
    return StreamingResponse([b"ab", b"cd"], headers={"content-length": "4"})


@app.get("/endless")
async def endless(request: Request) -> AsyncIterator[bytes]:
    name = request.query_params["name"]
    try:
        while True:
            produced[name] += 1
            yield b"x" * 65536
    finally:
        events[name].set()


@app.get("/quiet")
async def quiet(request: Request) -> AsyncIterator[str]:
    name = request.query_params["name"]
    try:
        yield "hello\n"
        await anyio.sleep_forever()
    finally:
        events[name].set()


@app.get("/broken")
async def broken(request: Request) -> AsyncIterator[str]:
    yield "partial"
    raise RuntimeError("the feed broke")


def numbers() -> Iterator[bytes]:
    yield from (b"1", b"2", b"3")


@app.get("/sync")
async def sync_iterable(request: Request) -> StreamingResponse:
    return StreamingResponse(numbers(), media_type="text/plain")


def dechunk(body: bytes) -> bytes:
    """Decode a chunked body (which must end with the last chunk)."""
    out = bytearray()
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert body == b"\r\n", body
            return bytes(out)
        out += body[:size]
        assert body[size : size + 2] == b"\r\n"
        body = body[size + 2 :]


async def get(port: int, target: str, version: str = "1.1", method: str = "GET") -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        head = f"{method} {target} HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\n"
        await stream.send(head.encode())
        with anyio.fail_after(5):
            return await read_all(stream)


def split(response: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *fields = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    return status, headers, body


async def test_an_async_generator_route_streams_chunked() -> None:
    async with app.test_server() as server:
        status, headers, body = split(await get(server.port, "/count"))
    assert status == "HTTP/1.1 200 OK"
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert dechunk(body) == b"0\n1\n2\n"


async def test_a_given_content_length_frames_the_body() -> None:
    async with app.test_server() as server:
        _, headers, body = split(await get(server.port, "/sized"))
    assert headers["content-length"] == "4"
    assert "transfer-encoding" not in headers
    assert body == b"abcd"


async def test_an_http_1_0_client_gets_a_close_delimited_body() -> None:
    async with app.test_server() as server:
        _, headers, body = split(await get(server.port, "/count", version="1.0"))
    assert "transfer-encoding" not in headers
    assert body == b"0\n1\n2\n"


async def test_a_plain_iterable_streams_too() -> None:
    async with app.test_server() as server:
        _, headers, body = split(await get(server.port, "/sync"))
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert dechunk(body) == b"123"


async def test_head_sends_the_head_and_never_starts_the_generator() -> None:
    finished = record("head")
    async with app.test_server() as server:
        status, _headers, body = split(await get(server.port, "/endless?name=head", method="HEAD"))
    assert status == "HTTP/1.1 200 OK"
    assert body == b""
    assert produced["head"] == 0
    assert not finished.is_set()  # never started, so its finally never ran


async def test_a_client_that_stops_reading_holds_the_generator_back() -> None:
    """Backpressure: only what fits the buffers is produced; leaving runs the finally."""
    finished = record("slow")
    async with app.test_server() as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        await stream.send(b"GET /endless?name=slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_until(stream, b"\r\n\r\n")
        await anyio.sleep(0.3)
        held = produced["slow"]
        await anyio.sleep(0.2)  # still within write_timeout: no progress, nothing produced
        assert produced["slow"] == held
        assert held < 200  # 64 KiB each: socket buffers, not an unbounded queue
        await stream.aclose()
        with anyio.fail_after(5):
            await finished.wait()


async def test_a_client_that_leaves_ends_a_waiting_generator() -> None:
    finished = record("quiet")
    async with app.test_server() as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(b"GET /quiet?name=quiet HTTP/1.1\r\nHost: x\r\n\r\n")
            await read_until(stream, b"hello\n")
        with anyio.fail_after(5):
            await finished.wait()  # noticed without a write: the watcher saw the EOF


async def test_a_stalled_client_is_dropped_after_write_timeout() -> None:
    finished = record("stalled")
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(b"GET /endless?name=stalled HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(5):
            await finished.wait()  # write_timeout is 0.5 s; the client never reads


async def test_a_generator_that_raises_cuts_the_response_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with app.test_server() as server:
        _, headers, body = split(await get(server.port, "/broken"))
        assert headers["transfer-encoding"] == "chunked"
        assert b"partial" in body
        assert not body.endswith(b"0\r\n\r\n")  # no last chunk: the client knows it is cut
        assert split(await get(server.port, "/count"))[0] == "HTTP/1.1 200 OK"
    logged = [r for r in caplog.records if "streamed response body" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR


async def test_shutdown_ends_the_stream_with_its_last_chunk() -> None:
    finished = record("shutdown")
    async with app.test_server() as server:
        assert server.server is not None
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        await stream.send(b"GET /quiet?name=shutdown HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_until(stream, b"hello\n")
        server.server.shutdown()
        with anyio.fail_after(5):
            rest = await read_all(stream)
            await finished.wait()
        await stream.aclose()
    assert rest.endswith(b"0\r\n\r\n")


def test_a_streaming_response_needs_an_iterable() -> None:
    with pytest.raises(TypeError, match="iterable of chunks"):
        StreamingResponse(b"not chunks")  # type: ignore[arg-type]


async def test_a_streamed_body_that_is_never_started_is_closed() -> None:
    """A 500 substituted for unsendable headers closes the body's producer, not strands it."""
    closed: list[str] = []

    class Body:
        def __aiter__(self) -> Body:
            return self

        async def __anext__(self) -> bytes:
            raise AssertionError("never started")

        async def aclose(self) -> None:
            closed.append("closed")

    app = Spikard()

    @app.get("/bad-header")
    def bad_header() -> StreamingResponse:
        return StreamingResponse(Body(), headers={"x-note": "\u03a9"})

    async with app.test_server() as server:
        reply = await server.request("GET", "/bad-header")
    assert reply.status == 500
    assert closed == ["closed"]
