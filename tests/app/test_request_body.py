"""Streamed request bodies over real loopback sockets, on both backends.

``stream()`` and ``body()`` with ``Content-Length`` and chunked bodies, backpressure, limits
(413 by announcement and by running total, per request), ``Expect: 100-continue`` (the 100
only when the handler reads), what happens to a body the handler left unread (a small one
is dropped and the connection kept, a large one closes it), pipelining, stalled and vanishing
uploaders, malformed chunked encoding mid-body, and an upload echoed by a streamed response
while it arrives. What the client sees is asserted on the wire; what the handler saw through
module-level records.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.abc
import pytest

from spikard import Headers, HTTPConfig, PlainTextResponse, Request, Spikard, WebSocket
from spikard.errors import BodyTimeout, ClientDisconnected, ContentTooLarge
from spikard.testing.server import TestServerInfo

from ..helpers import read_all, read_until, upgrade_request

MAX_BODY_SIZE = 100_000
BODY_TIMEOUT = 0.4
LINGER_TIMEOUT = 0.5

app = Spikard(
    http=HTTPConfig(
        max_body_size=MAX_BODY_SIZE,
        body_timeout=BODY_TIMEOUT,
        linger_timeout=LINGER_TIMEOUT,
        request_timeout=2.0,
    )
)
seen: list[object] = []
"""What handlers observed (chunk sizes, exception types, ...), in order."""
gates: dict[str, anyio.Event] = {}
"""Events a handler waits on (``?gate=name``), set by the test."""
reached: dict[str, anyio.Event] = {}
"""Events a handler sets when it reached a point (``?gate=name``), awaited by the test."""


@pytest.fixture(autouse=True)
def _fresh_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spikard")
    seen.clear()
    gates.clear()
    reached.clear()


def gate(name: str) -> tuple[anyio.Event, anyio.Event]:
    """A (release, reached) pair for the handler called with ``?gate=name``."""
    gates[name] = anyio.Event()
    reached[name] = anyio.Event()
    return gates[name], reached[name]


async def pass_gate(request: Request) -> None:
    name = request.query_params.get("gate")
    if name is not None:
        reached[name].set()
        await gates[name].wait()


@app.post("/body")
async def whole_body(request: Request) -> str:
    return f"{len(await request.body())} bytes"


@app.post("/chunks")
async def chunk_sizes(request: Request) -> PlainTextResponse:
    sizes = []
    try:
        async for chunk in request.stream():
            sizes.append(len(chunk))
            if len(sizes) == 1:
                await pass_gate(request)
    except Exception as exc:
        seen.append(type(exc))
        raise
    seen.append(sizes)
    return PlainTextResponse(json.dumps({"total": sum(sizes), "count": len(sizes)}))


@app.post("/limited")
async def limited(request: Request) -> str:
    request.max_body_size = int(request.query_params["max"])
    if request.query_params.get("mode") == "stream":
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
    else:
        total = len(await request.body())
    try:
        request.max_body_size = 1
    except RuntimeError as exc:
        seen.append(str(exc))
    return f"{total} bytes"


@app.post("/ignore")
async def ignore(request: Request) -> str:
    await pass_gate(request)
    return "ignored"


@app.get("/hello")
async def hello(request: Request) -> str:
    return "hello"


@app.post("/reject")
async def reject(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Unauthorized", 401, {"www-authenticate": "Basic"})


@app.post("/continue")
async def read_after_gate(request: Request) -> bytes:
    await pass_gate(request)
    return await request.body()


@app.post("/echo")
async def echo(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        yield chunk


@app.post("/sum-then-stream")
async def sum_then_stream(request: Request) -> AsyncIterator[str]:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    yield "total="
    yield str(total)


@app.websocket("/ws")
async def ws_echo(socket: WebSocket) -> AsyncIterator[object]:
    async for message in socket:
        yield message


@app.post("/misuse")
async def misuse(request: Request) -> PlainTextResponse:
    case = request.query_params["case"]
    if case == "body-then-stream":
        body = await request.body()
        chunks = [chunk async for chunk in request.stream()]
        return PlainTextResponse(f"{chunks == [body]} {len(body)}")
    try:
        if case == "partial-stream-then-body":
            async for _ in request.stream():
                break
            await request.body()
        else:  # stream twice
            async for _ in request.stream():
                pass
            async for _ in request.stream():
                pass  # pragma: no cover
    except RuntimeError as exc:
        return PlainTextResponse(str(exc), 409)
    return PlainTextResponse("no error", 500)  # pragma: no cover


# ---- wire helpers ------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_replies(data: bytes) -> list[Reply]:
    """Split complete responses (Content-Length or chunked, interim ones included)."""
    replies = []
    while data:
        head, separator, data = data.partition(b"\r\n\r\n")
        assert separator, f"incomplete head {head!r}"
        status_line, *fields = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ")[1])
        headers = {}
        for line in fields:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if status < 200:
            pass
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size_line, _, data = data.partition(b"\r\n")
                size = int(size_line, 16)
                if size == 0:
                    assert data.startswith(b"\r\n"), "a chunked body ends with CRLF"
                    data = data[2:]
                    break
                body += data[:size]
                assert data[size : size + 2] == b"\r\n"
                data = data[size + 2 :]
        else:
            size = int(headers.get("content-length", "0"))
            body, data = data[:size], data[size:]
        replies.append(Reply(status, headers, body))
    return replies


def post_head(path: str, length: int | None, *extra: str) -> bytes:
    """A POST head with ``Content-Length: length``, or chunked when ``length`` is None."""
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    lines = [f"POST {path} HTTP/1.1", "Host: x", framing, *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


async def exchange(server: TestServerInfo, data: bytes, *, eof: bool = True) -> bytes:
    """Send ``data`` on a fresh connection; read until the server closes it."""
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(data)
        if eof:
            await stream.send_eof()
        with anyio.fail_after(5):
            return await read_all(stream)


async def read_reply(stream: anyio.abc.ByteStream) -> Reply:
    """Read until one complete final response arrived (after any interim ones)."""
    data = b""
    with anyio.fail_after(5):
        while not _complete(data):
            data += await stream.receive()
    return [reply for reply in parse_replies(data) if reply.status >= 200][-1]


def _complete(data: bytes) -> bool:
    """True when ``data`` holds a final response whose body is complete."""
    try:
        replies = parse_replies(data)
    except (AssertionError, ValueError, IndexError):
        return False
    if not replies or replies[-1].status < 200:
        return False
    last = replies[-1]
    if last.headers.get("transfer-encoding") == "chunked":
        return data.endswith(b"0\r\n\r\n")
    return len(last.body) == int(last.headers.get("content-length", "0"))


def messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "spikard.http" and text in record.getMessage()
    ]


async def no_connections(server: TestServerInfo) -> None:
    assert server.server is not None
    with anyio.fail_after(5):
        while server.server.connection_count:
            await anyio.sleep(0.01)


# ---- stream() and body() -------------------------------------------------------------------


async def test_body_with_content_length_and_chunked() -> None:
    payload = bytes(range(256)) * 200
    async with app.test_server() as server:
        data = await exchange(server, post_head("/body", len(payload)) + payload)
        assert [r.body for r in parse_replies(data)] == [b"51200 bytes"]
        data = await exchange(server, post_head("/body", None) + chunked(payload[:7], payload[7:]))
        assert [r.body for r in parse_replies(data)] == [b"51200 bytes"]


async def test_stream_yields_chunks_as_they_arrive() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/chunks", 9) + b"aaa")
        for part in (b"bbb", b"ccc"):
            await anyio.sleep(0.05)
            await stream.send(part)
        reply = await read_reply(stream)
    assert json.loads(reply.body) == {"total": 9, "count": 3}
    assert seen == [[3, 3, 3]]


async def test_a_chunked_body_streams_chunk_by_chunk() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/chunks", None) + b"4\r\nabcd\r\n")
        await anyio.sleep(0.05)
        await stream.send(b"2\r\nef\r\n0\r\n\r\n")
        reply = await read_reply(stream)
    assert json.loads(reply.body) == {"total": 6, "count": 2}


async def test_the_body_is_read_only_as_the_handler_pulls() -> None:
    """Backpressure: a handler that stops reading stops the upload (the client blocks)."""
    release, at_gate = gate("slow")
    size = 32 * 1024 * 1024
    payload = b"x" * size
    big = Spikard(http=HTTPConfig(max_body_size=size))
    big.post("/chunks")(chunk_sizes)
    async with (
        big.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/chunks?gate=slow", size))
        sent = 0
        async with anyio.create_task_group() as task_group:

            async def upload() -> None:
                nonlocal sent
                for start in range(0, size, 65536):
                    await stream.send(payload[start : start + 65536])
                    sent += 65536

            task_group.start_soon(upload)
            with anyio.fail_after(5):
                await at_gate.wait()
            await anyio.sleep(0.3)
            assert sent < size // 2  # the kernel's buffers filled; the server read no more
            release.set()
        reply = await read_reply(stream)
    assert json.loads(reply.body)["total"] == size


async def test_a_slow_upload_that_keeps_moving_is_not_cut() -> None:
    """body_timeout bounds each wait for bytes, not the whole body."""
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/body", 12))
        for _ in range(12):  # ~1.2 s in all, three times body_timeout
            await anyio.sleep(BODY_TIMEOUT / 4)
            await stream.send(b"z")
        reply = await read_reply(stream)
    assert (reply.status, reply.body) == (200, b"12 bytes")


@pytest.mark.parametrize(
    ("case", "status", "text"),
    [
        ("body-then-stream", 200, "True 5"),
        ("partial-stream-then-body", 409, "body() after stream()"),
        ("stream-twice", 409, "it can be streamed once"),
    ],
)
async def test_body_and_stream_misuse_is_explained(case: str, status: int, text: str) -> None:
    async with app.test_server() as server:
        data = await exchange(server, post_head(f"/misuse?case={case}", 5) + b"hello")
    (reply,) = parse_replies(data)
    assert reply.status == status
    assert text in reply.body.decode()


# ---- limits --------------------------------------------------------------------------------


async def test_an_announced_body_over_the_limit_is_413_before_it_is_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/body", 10 * MAX_BODY_SIZE))  # and no body at all
        reply = await read_reply(stream)
        assert reply.status == 413
        assert reply.headers["connection"] == "close"
        with anyio.fail_after(5):
            await read_all(stream)  # the server closes (after lingering)
    assert len(messages(caplog, "over max_body_size")) == 1


async def test_a_chunked_body_over_the_limit_is_413_once_the_total_passes_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    part = b"p" * 30_000
    async with app.test_server() as server:
        data = await exchange(server, post_head("/chunks", None) + chunked(*[part] * 4))
    (reply,) = parse_replies(data)
    assert reply.status == 413
    assert reply.headers["connection"] == "close"
    assert seen == [ContentTooLarge]
    assert len(messages(caplog, "over max_body_size")) == 1


@pytest.mark.parametrize("mode", ["body", "stream"])
@pytest.mark.parametrize("chunks", [False, True], ids=["content-length", "chunked"])
async def test_the_limit_can_be_raised_and_lowered_per_request(mode: str, chunks: bool) -> None:
    big = b"b" * (MAX_BODY_SIZE + 50_000)

    def request(limit: int, body: bytes) -> bytes:
        path = f"/limited?max={limit}&mode={mode}"
        if chunks:
            return post_head(path, None) + chunked(body)
        return post_head(path, len(body)) + body

    async with app.test_server() as server:
        raised = parse_replies(await exchange(server, request(2 * MAX_BODY_SIZE, big)))
        lowered = parse_replies(await exchange(server, request(10, b"0123456789!")))
        exact = parse_replies(await exchange(server, request(10, b"0123456789")))
    assert (raised[0].status, raised[0].body) == (200, b"%d bytes" % len(big))
    assert lowered[0].status == 413
    assert lowered[0].headers["connection"] == "close"
    assert (exact[0].status, exact[0].body) == (200, b"10 bytes")
    assert all("cannot change once the request body is being read" in str(s) for s in seen)
    assert len(seen) == 2


def test_max_body_size_must_be_positive() -> None:
    request = Request("POST", "/", Headers())
    with pytest.raises(ValueError, match="positive"):
        request.max_body_size = 0
    request.max_body_size = 5
    assert request.max_body_size == 5


def test_body_timeout_is_validated() -> None:
    with pytest.raises(ValueError, match="body_timeout"):
        HTTPConfig(body_timeout=0)


# ---- Expect: 100-continue ------------------------------------------------------------------


async def test_100_continue_is_sent_only_when_the_handler_reads() -> None:
    release, at_gate = gate("expect")
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/continue?gate=expect", 5, "Expect: 100-continue"))
        with anyio.fail_after(5):
            await at_gate.wait()
        with anyio.move_on_after(0.2) as waited:
            early = await stream.receive()
            pytest.fail(f"the server answered before the handler read: {early!r}")
        assert waited.cancelled_caught
        release.set()
        with anyio.fail_after(5):
            interim = await read_until(stream, b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await stream.send(b"later")
        reply = await read_reply(stream)
        assert (reply.status, reply.body) == (200, b"later")
        assert "connection" not in reply.headers
        # The connection goes on.
        await stream.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = await read_reply(stream)
        assert reply.body == b"hello"


async def test_a_rejecting_handler_never_asks_for_the_body() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/reject", 5_000_000, "Expect: 100-continue"))
        with anyio.fail_after(5):
            data = await read_all(stream)  # 401, then the server closes
    replies = parse_replies(data)
    assert [reply.status for reply in replies] == [401]  # no 100 Continue before it
    assert replies[0].headers["connection"] == "close"


async def test_a_small_unread_body_with_100_continue_closes_instead_of_waiting() -> None:
    """The client waits for a 100 that never comes: the connection cannot be drained."""
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/ignore", 10, "Expect: 100-continue"))
        started = anyio.current_time()
        with anyio.fail_after(5):
            data = await read_all(stream)
    (reply,) = parse_replies(data)
    assert (reply.status, reply.headers["connection"]) == (200, "close")
    assert anyio.current_time() - started < LINGER_TIMEOUT + 1


# ---- the unread rest -----------------------------------------------------------------------


async def test_a_small_unread_body_is_dropped_and_the_connection_kept() -> None:
    release, _ = gate("late")
    release.set()
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        # The head alone: the handler answers before any of the body arrived.
        await stream.send(post_head("/ignore?gate=late", 30_000))
        first = await read_reply(stream)
        assert (first.status, first.body) == (200, b"ignored")
        assert "connection" not in first.headers
        await stream.send(b"q" * 30_000 + b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        second = await read_reply(stream)
        assert second.body == b"hello"
        # And one whose body came with its head, followed by a pipelined request.
        await stream.send(post_head("/ignore", 3) + b"abcGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(5):
            data = await read_until(stream, b"hello")
        assert [reply.body for reply in parse_replies(data)] == [b"ignored", b"hello"]


async def test_a_small_unread_body_that_never_comes_closes_after_linger_timeout() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/ignore", 100) + b"only part")
        started = anyio.current_time()
        with anyio.fail_after(5):
            data = await read_all(stream)
        waited = anyio.current_time() - started
    (reply,) = parse_replies(data)
    assert "connection" not in reply.headers  # announced keep-alive, then gave up
    assert LINGER_TIMEOUT * 0.8 < waited < LINGER_TIMEOUT + 1.5


@pytest.mark.parametrize("chunks", [False, True], ids=["content-length", "chunked"])
async def test_a_large_or_unknown_unread_body_closes_the_connection(chunks: bool) -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        if chunks:
            await stream.send(post_head("/ignore", None) + b"10\r\n" + b"c" * 16 + b"\r\n")
        else:
            await stream.send(post_head("/ignore", 1_000_000) + b"c" * 100_000)
        with anyio.fail_after(5):
            data = await read_all(stream)  # the server closes after lingering
    (reply,) = parse_replies(data)
    assert (reply.status, reply.headers["connection"]) == (200, "close")


async def test_requests_pipelined_after_streamed_uploads_are_answered_in_order() -> None:
    first = b"1" * 90_000  # more than one socket read
    pipeline = (
        post_head("/chunks", len(first))
        + first
        + b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        + post_head("/sum-then-stream", None)
        + chunked(b"ab", b"cde")
        + b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
        + post_head("/chunks", 4)
        + b"wxyz"
        + b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    async with app.test_server() as server:
        data = await exchange(server, pipeline, eof=False)
    replies = parse_replies(data)
    assert [reply.status for reply in replies] == [200] * 6
    assert json.loads(replies[0].body)["total"] == 90_000
    assert [replies[i].body for i in (1, 2, 3, 5)] == [b"hello", b"total=5", b"hello", b"hello"]
    assert json.loads(replies[4].body) == {"total": 4, "count": 1}


# ---- uploaders that stall, vanish or send garbage -------------------------------------------


async def test_a_stalled_upload_gets_408_and_the_connection_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/chunks", 1000) + b"s" * 10)
        started = anyio.current_time()
        with anyio.fail_after(5):
            data = await read_all(stream)
        waited = anyio.current_time() - started
        await no_connections(server)
    (reply,) = parse_replies(data)
    assert (reply.status, reply.headers["connection"]) == (408, "close")
    assert BODY_TIMEOUT * 0.8 < waited < BODY_TIMEOUT + 1.5
    assert seen == [BodyTimeout]
    assert len(messages(caplog, "stalled")) == 1


async def test_a_stalled_upload_during_a_streamed_response_aborts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/echo", 100_000) + b"e" * 1000)
        with anyio.fail_after(5):
            data = await read_all(stream)
        await no_connections(server)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body.startswith(b"3e8\r\n" + b"e" * 1000 + b"\r\n")
    assert not body.endswith(b"0\r\n\r\n")  # cut off: the client must not take it whole
    assert len(messages(caplog, "stalled")) == 1
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_client_vanishing_mid_body_is_seen_by_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release, at_gate = gate("vanish")
    release.set()
    async with app.test_server() as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(post_head("/chunks?gate=vanish", 100_000) + b"v" * 100)
            with anyio.fail_after(5):
                await at_gate.wait()
        await no_connections(server)
        data = await exchange(server, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert parse_replies(data)[0].body == b"hello"  # the server goes on serving
    assert seen == [ClientDisconnected]
    assert len(messages(caplog, "left before the request body ended")) == 1
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_half_closed_client_reads_the_400() -> None:
    async with app.test_server() as server:
        data = await exchange(server, post_head("/body", 100) + b"short", eof=True)
    (reply,) = parse_replies(data)
    assert reply.status == 400
    assert reply.headers["connection"] == "close"


async def test_malformed_chunked_encoding_mid_body_is_400(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release, at_gate = gate("garbage")
    release.set()
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(post_head("/chunks?gate=garbage", None) + b"5\r\nhello\r\n")
        with anyio.fail_after(5):
            await at_gate.wait()  # the handler is reading
        await stream.send(b"zz\r\n")
        with anyio.fail_after(5):
            data = await read_all(stream)
    (reply,) = parse_replies(data)
    assert (reply.status, reply.headers["connection"]) == (400, "close")
    assert b"malformed request body" in reply.body
    assert len(messages(caplog, "bad request from")) == 1


# ---- an upload echoed while it arrives -----------------------------------------------------


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "100-continue"])
async def test_a_5_mib_upload_echoed_by_a_streamed_response(expect: bool) -> None:
    """The handler streams the body back while it arrives: one reader owns the socket."""
    size = 5 * 1024 * 1024
    payload = bytes(range(251)) * (size // 251) + b"!" * (size % 251)
    echo_app = Spikard(http=HTTPConfig(max_body_size=2 * size))
    echo_app.post("/echo")(echo)
    extra = ("Expect: 100-continue",) if expect else ()
    async with (
        echo_app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        received = bytearray()
        async with anyio.create_task_group() as task_group:

            async def upload() -> None:
                await stream.send(post_head("/echo", size, *extra))
                if expect:
                    await continued.wait()
                for start in range(0, size, 65536):
                    await stream.send(payload[start : start + 65536])

            async def download() -> None:
                with anyio.fail_after(20):
                    while True:
                        try:
                            received.extend(await stream.receive())
                        except anyio.EndOfStream:
                            return
                        if b"100 Continue" in received[:40]:
                            continued.set()

            continued = anyio.Event()
            task_group.start_soon(upload)
            task_group.start_soon(download)
    data = bytes(received)
    if expect:
        interim, _, data = data.partition(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue"
    (reply,) = parse_replies(data)
    assert reply.status == 200
    assert reply.headers["connection"] == "close"  # the rest was large when the head went
    assert len(reply.body) == size
    assert reply.body == payload


async def test_a_websocket_handshake_with_an_unfinished_body_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What follows such a head is body, not frames: it must not reach the WebSocket."""
    request = upgrade_request("/ws", extra="Content-Length: 10\r\n") + b"01234"
    async with app.test_server() as server:
        data = await exchange(server, request)
    (reply,) = parse_replies(data)
    assert (reply.status, reply.headers["connection"]) == (400, "close")
    assert len(messages(caplog, "unfinished body")) == 1
