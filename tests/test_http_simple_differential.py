"""The simple-exchange fast path against h11 alone, end to end over loopback sockets.

Random pipelines of requests are written in random chunkings to a server with the fast path
and then, the same bytes in the same chunks, to one where h11 serves every exchange
(``HTTPConnection.simple_exchanges = False``). The bytes the client reads (``Date`` aside)
and the lines logged must be the same.

The requests: simple GET/HEAD/DELETE, 204, 404, streamed bodies (chunked, with their own
``content-length``, a file with ranges, server-sent events, a streamed 204, one that says
``connection: close``), two cookies, an unsendable header, bodies with Content-Length and
chunked, a lower-case method, bare ``\\n`` line endings; each pipeline ends with one after
which the connection closes (HTTP/1.0, ``Connection: close``, a missing or repeated Host, a
control character, a leading blank line, HTTP/2.0, garbage, a streamed body shorter or
longer than its ``content-length``, a streamed answer to HTTP/1.0). h11 words a 400 by what
had arrived when it refused (``illegal request line`` with or without the line), so the text
after a 400's status line is left out of the comparison."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import (
    EventSourceResponse,
    FileResponse,
    HTTPConfig,
    PlainTextResponse,
    Request,
    Response,
    ServerSentEvent,
    Spikard,
    StreamingResponse,
)
from spikard.connection.http import HTTPConnection

from .helpers import read_all

app = Spikard(http=HTTPConfig(linger_timeout=0.1))  # an error's lingering close: short


@app.route("/", methods=("GET", "HEAD", "DELETE"))
async def index(request: Request) -> str:
    return "hello"


@app.get("/none")
async def nothing(request: Request) -> None:
    return None


@app.get("/stream")
async def stream(request: Request) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one", b"two", b"three"):
            yield part

    return StreamingResponse(parts(), media_type="text/plain")


async def three_bytes() -> AsyncIterator[bytes]:
    yield b"abc"


@app.get("/stream/{length}")
async def stream_length(request: Request) -> StreamingResponse:
    headers = {"content-length": request.path_params["length"]}
    return StreamingResponse(three_bytes(), headers=headers)


@app.get("/stream-204")
async def stream_204(request: Request) -> StreamingResponse:
    return StreamingResponse(three_bytes(), status_code=204)


@app.get("/stream-close")
async def stream_close(request: Request) -> StreamingResponse:
    return StreamingResponse(three_bytes(), headers={"connection": "close"})


@app.get("/events")
async def events(request: Request) -> EventSourceResponse:
    async def feed() -> AsyncIterator[object]:
        yield ServerSentEvent("two\nlines", event="e", id="1")
        yield {"n": 2}

    return EventSourceResponse(feed())


@app.get("/file")
async def file(request: Request) -> FileResponse:
    return FileResponse(__file__, chunk_size=4096)


@app.get("/cookies")
async def cookies(request: Request) -> Response:
    response = PlainTextResponse("two cookies")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2", httponly=True)
    return response


@app.get("/omega")
async def omega(request: Request) -> PlainTextResponse:
    return PlainTextResponse("never sent", headers={"x-greek": "Ω"})


@app.post("/echo")
async def echo(request: Request) -> bytes:
    return await request.body()


GOING_ON = [
    b"GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"DELETE /?q=a%20b HTTP/1.1\r\nHost: h\r\nX-Tab: a\tb\r\n\r\n",
    b"GET /none HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /missing HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n",
    b"HEAD /stream HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /stream/3 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"HEAD /stream/3 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /stream-204 HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /events HTTP/1.1\r\nHost: h\r\nLast-Event-ID: 0\r\n\r\n",
    b"GET /file HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET /file HTTP/1.1\r\nHost: h\r\nRange: bytes=10-19\r\n\r\n",
    b"GET /cookies HTTP/1.1\r\nHost: h\r\nCookie: x=y\r\n\r\n",
    b"GET /omega HTTP/1.1\r\nHost: h\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"get / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"head / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\nHost: h\n\n",  # bare LF: h11 reads it
]
CLOSING = [  # the connection ends after these: one per pipeline, at its end
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nX-Bell: a\x07b\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\x00\x01garbage\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    b"GET /stream/4 HTTP/1.1\r\nHost: h\r\n\r\n",  # short: cut off
    b"GET /stream/2 HTTP/1.1\r\nHost: h\r\n\r\n",  # long: cut off
    b"GET /stream HTTP/1.0\r\n\r\n",  # until the connection closes
    b"HEAD /stream HTTP/1.0\r\n\r\n",
    b"GET /stream-close HTTP/1.1\r\nHost: h\r\n\r\n",
]
_DATE = re.compile(rb"date: [^\r]*\r\n")
_PEER = re.compile(r"127\.0\.0\.1:\d+")
_REFUSAL = re.compile(rb"HTTP/1\.1 400 Bad Request\r\n.*", re.DOTALL)
_REFUSAL_LINE = re.compile(r"(bad request from peer): .*")


def cases(count: int, seed: int) -> list[list[bytes]]:
    """``count`` pipelines, each cut into chunks (one-byte chunks among them)."""
    rng = random.Random(seed)
    found = []
    for _ in range(count):
        data = b"".join(rng.choices(GOING_ON, k=rng.randint(0, 5))) + rng.choice(CLOSING)
        places = [i for i in range(1, len(data)) if data[i - 1 : i + 1] != b"\r\n"]
        cuts = sorted(rng.sample(places, k=min(len(places), rng.randint(0, 8))))
        found.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return found


async def run(port: int, chunks: list[bytes]) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        for chunk in chunks:
            try:
                await stream.send(chunk)
            except anyio.BrokenResourceError:
                break  # refused before its end (garbage): what was answered is read below
        with anyio.fail_after(10):
            data = _DATE.sub(b"date: -\r\n", await read_all(stream))
            return _REFUSAL.sub(b"HTTP/1.1 400 Bad Request\r\n...", data)


async def serve_all(
    all_chunks: list[list[bytes]], caplog: pytest.LogCaptureFixture
) -> list[tuple[bytes, list[str]]]:
    results = []
    async with app.test_server() as server:
        for chunks in all_chunks:
            caplog.clear()
            data = await run(server.port, chunks)
            lines = [
                record.name + " " + _REFUSAL_LINE.sub(r"\1", _PEER.sub("peer", record.getMessage()))
                for record in caplog.records
                if record.name.startswith("spikard.")
            ]
            results.append((data, lines))
    return results


async def test_the_fast_path_answers_as_h11_does(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="spikard")
    all_chunks = cases(50, seed=20261204)
    fast = await serve_all(all_chunks, caplog)
    monkeypatch.setattr(HTTPConnection, "simple_exchanges", False)
    reference = await serve_all(all_chunks, caplog)
    for chunks, (ours, our_lines), (theirs, their_lines) in zip(
        all_chunks, fast, reference, strict=True
    ):
        assert ours == theirs, chunks
        assert our_lines == their_lines, chunks
    # the pipelines did exercise both paths and their answers
    everything = b"".join(data for data, _ in fast)
    for status in (b"200 OK", b"204 No Content", b"206 Partial", b"404 Not", b"400 Bad", b"500"):
        assert status in everything
    assert b"event: e\nid: 1\ndata: two\ndata: lines\n\n" in everything
    assert b"transfer-encoding: chunked" in everything.lower()
