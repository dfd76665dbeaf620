"""Bad peers over real loopback sockets: each gets the right answer, and the server survives.

Every test runs a server inside :func:`serving`, which on the way out proves that the server
still echoes on a fresh WebSocket and that no connection outlived its peer. What the peer sees
is asserted on the wire (status lines, close frames, EOF); what the server logs is counted so
that each bad input is logged at most once (exactly once where it is logged at all).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from websockets.exceptions import ConnectionClosedError

from spikard import (
    HTTPConfig,
    Request,
    Spikard,
    WebSocket,
    WebSocketConfig,
    WebSocketMessage,
    WebSocketResponse,
)
from spikard.testing.server import TestServerInfo

from .helpers import (
    close_code,
    masked_frame,
    parse_server_frames,
    read_all,
    read_until,
    upgrade_request,
    ws_connect,
)

MAX_HEADER_BYTES = 2048
MAX_HEADER_COUNT = 20
MAX_BODY_SIZE = 1024
MAX_MESSAGE_SIZE = 1024
CLOSE_TIMEOUT = 0.5
TEXT, BINARY, CLOSE, PING = 0x1, 0x2, 0x8, 0x9

app = Spikard(
    http=HTTPConfig(
        max_header_bytes=MAX_HEADER_BYTES,
        max_header_count=MAX_HEADER_COUNT,
        max_body_size=MAX_BODY_SIZE,
        request_timeout=0.5,
        keep_alive_timeout=0.5,
    ),
    websocket=WebSocketConfig(max_message_size=MAX_MESSAGE_SIZE, close_timeout=CLOSE_TIMEOUT),
)
keepalive_app = Spikard(websocket=WebSocketConfig(ping_interval=0.2, ping_timeout=0.3))

shim_events: list[tuple[str, object]] = []


@app.websocket("/echo")
@keepalive_app.websocket("/echo")
async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message


@app.websocket("/boom")
async def boom(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message
        raise RuntimeError("boom")


@app.websocket("/shim")
def shim(request: Request) -> WebSocketResponse:
    def on_message(message: WebSocketMessage) -> WebSocketMessage | None:
        if message.as_text() == "boom":
            raise ValueError("boom")
        return message

    def on_error(error: str) -> None:
        shim_events.append(("error", error))

    def on_close(frame: tuple[int, str] | None) -> None:
        shim_events.append(("close", frame))

    return WebSocketResponse(on_message=on_message, on_error=on_error, on_close=on_close)


SLOW_ACCEPT = 0.3
"""How long the /slow handlers take before they answer the handshake."""


@app.websocket("/slow")
async def slow(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    try:
        await anyio.sleep(SLOW_ACCEPT)
        async for message in socket:
            yield message
    finally:
        shim_events.append(("finally", None))


@app.websocket("/slowshim")
def slow_shim(request: Request) -> WebSocketResponse:
    async def on_connect() -> None:
        await anyio.sleep(SLOW_ACCEPT)

    def on_close(frame: tuple[int, str] | None) -> None:
        shim_events.append(("close", frame))

    return WebSocketResponse(
        on_message=lambda message: message, on_connect=on_connect, on_close=on_close
    )


@app.route("/hello", methods=["GET", "POST"])
async def hello(request: Request) -> str:
    return f"hello {len(await request.body())}"


# ---- helpers -----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _capture_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="spikard")
    shim_events.clear()


def server_logs(caplog: pytest.LogCaptureFixture, start: int = 0) -> list[str]:
    """What the server logged (from record ``start`` on), access lines aside."""
    return [
        record.getMessage()
        for record in caplog.records[start:]
        if record.name.startswith("spikard") and record.name != "spikard.access"
    ]


def assert_logged_once(caplog: pytest.LogCaptureFixture, text: str) -> None:
    lines = server_logs(caplog)
    assert sum(text in line for line in lines) == 1, lines
    assert len(lines) == 1, lines


def assert_logged_at_most_once(caplog: pytest.LogCaptureFixture) -> None:
    lines = server_logs(caplog)
    assert len(lines) <= 1, lines


async def wait_for_no_connections(server: TestServerInfo) -> None:
    assert server.server is not None
    with anyio.fail_after(5):
        while server.server.connection_count:
            await anyio.sleep(0.01)


async def assert_still_serving(server: TestServerInfo) -> None:
    with anyio.fail_after(5):
        async with ws_connect(server.ws_url("/echo")) as ws:
            await ws.send("still here")
            assert await ws.recv() == "still here"


@asynccontextmanager
async def serving(
    caplog: pytest.LogCaptureFixture, application: Spikard = app
) -> AsyncIterator[TestServerInfo]:
    """Run the app; afterwards check that nothing leaked and that it still serves."""
    async with application.test_server() as server:
        yield server
        await wait_for_no_connections(server)
        logged = len(caplog.records)
        await assert_still_serving(server)
        await wait_for_no_connections(server)
        assert server_logs(caplog, logged) == []


async def exchange(server: TestServerInfo, data: bytes, *, eof: bool = True) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(data)
        if eof:
            await stream.send_eof()
        with anyio.fail_after(5):
            return await read_all(stream)


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Split one HTTP/1.1 response into status, lower-cased headers and body."""
    head, separator, body = data.partition(b"\r\n\r\n")
    assert separator, f"no complete response head in {data!r}"
    status_line, *fields = head.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers: dict[str, str] = {}
    for field in fields:
        name, _, value = field.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        assert len(body) == int(headers["content-length"]), data
    return int(status), headers, body


async def send_and_receive(ws: Any, message: str | bytes) -> object:
    await ws.send(message)
    return await ws.recv()


async def open_websocket(
    server: TestServerInfo, path: str = "/echo", after: bytes = b""
) -> tuple[anyio.abc.ByteStream, bytes]:
    """Upgrade a raw TCP connection (``after`` goes in the same write); return it and the
    bytes that followed the 101."""
    stream = await anyio.connect_tcp("127.0.0.1", server.port)
    await stream.send(upgrade_request(path, port=server.port) + after)
    with anyio.fail_after(5):
        data = await read_until(stream, b"\r\n\r\n")
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return stream, rest


async def server_frames_until_eof(
    stream: anyio.abc.ByteStream, already: bytes
) -> list[tuple[int, bytes]]:
    with anyio.fail_after(5):
        data = already + await read_all(stream)
    return parse_server_frames(data)


# ---- malformed HTTP ----------------------------------------------------------------------------

MALFORMED = [
    pytest.param(b"GET\r\n\r\n", id="request-line-without-target"),
    pytest.param(b"GET /hello\r\nHost: x\r\n\r\n", id="request-line-without-version"),
    pytest.param(b"GET /hello HTTP/1.1 extra\r\nHost: x\r\n\r\n", id="request-line-extra-token"),
    pytest.param(b"\x00\x01\x02\x03garbage\xff\xfe\r\n\r\n", id="garbage"),
    pytest.param(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(64), id="tls-hello"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost x\r\n\r\n", id="header-without-colon"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", id="space-before-colon"),
    pytest.param(b"GET /hello HTTP/1.1\r\n\r\n", id="missing-host"),
    pytest.param(
        b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", id="bad-content-length"
    ),
    pytest.param(
        b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        id="conflicting-content-length",
    ),
    pytest.param(
        b"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        id="bad-chunk-size",
    ),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", id="nul-in-header"),
    pytest.param(b"GET /hel", id="truncated-request"),
]


@pytest.mark.parametrize("data", MALFORMED)
async def test_malformed_request_is_400(data: bytes, caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        status, headers, _ = parse_response(await exchange(server, data))
        assert status == 400
        assert headers["connection"] == "close"
    assert_logged_once(caplog, "bad request from")


async def test_garbage_after_a_good_request_on_a_keep_alive_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving(caplog) as server:
        data = await exchange(server, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n\x00garbage\r\n\r\n")
        first, _, second = data.partition(b"hello 0")
        assert parse_response(first + b"hello 0")[0] == 200
        assert parse_response(second)[0] == 400
    assert_logged_once(caplog, "bad request from")


# ---- limits ------------------------------------------------------------------------------------


def request_with_header_bytes(size: int) -> bytes:
    """A complete GET /hello whose head is about ``size`` bytes."""
    start = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Filler: "
    return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"


async def test_header_block_within_the_limit_is_served(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        data = await exchange(server, request_with_header_bytes(MAX_HEADER_BYTES))
        assert parse_response(data)[0] == 200
    assert server_logs(caplog) == []


async def test_header_block_over_the_limit_is_431(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        unfinished = request_with_header_bytes(MAX_HEADER_BYTES * 2)[:-4]
        status, headers, _ = parse_response(await exchange(server, unfinished, eof=False))
        assert status == 431
        assert headers["connection"] == "close"
    assert_logged_once(caplog, "bad request from")


async def test_complete_header_block_over_the_limit_in_one_write_is_431(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # h11 itself bounds only a head that is still arriving; a whole one must be measured too.
    async with serving(caplog) as server:
        data = await exchange(server, request_with_header_bytes(MAX_HEADER_BYTES + 1000))
        status, headers, _ = parse_response(data)
        assert status == 431
        assert headers["connection"] == "close"
    assert_logged_once(caplog, "request head of")


def request_with_fields(count: int) -> bytes:
    fields = b"".join(b"X-Field-%d: v\r\n" % index for index in range(count - 1))
    return b"GET /hello HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"


async def test_header_count_at_the_limit_is_served(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        data = await exchange(server, request_with_fields(MAX_HEADER_COUNT))
        assert parse_response(data)[0] == 200


async def test_too_many_header_fields_is_431(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        data = await exchange(server, request_with_fields(MAX_HEADER_COUNT + 1))
        status, headers, _ = parse_response(data)
        assert status == 431
        assert headers["connection"] == "close"
    assert_logged_once(caplog, "too many header fields")


async def test_body_at_the_limit_is_served(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        head = b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % MAX_BODY_SIZE
        status, _, body = parse_response(await exchange(server, head + bytes(MAX_BODY_SIZE)))
        assert (status, body) == (200, b"hello %d" % MAX_BODY_SIZE)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_body_over_the_limit_is_413(chunked: bool, caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        if chunked:
            chunk = b"%x\r\n%s\r\n" % (600, b"a" * 600)
            data = b"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            data += chunk * 2
        else:
            # Announce more than we send, so the server has read everything when it answers.
            data = b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
            data += b"a" * (MAX_BODY_SIZE + 100)
        status, headers, _ = parse_response(await exchange(server, data, eof=False))
        assert status == 413
        assert headers["connection"] == "close"
    assert_logged_at_most_once(caplog)


# ---- bad handshakes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
            id="missing-key",
        ),
        pytest.param(upgrade_request("/echo", key="not a key"), id="invalid-key"),
        pytest.param(upgrade_request("/echo", key="c2hvcnQ="), id="short-key"),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Content-Length: 0\r\n\r\n",
            id="post",
        ),
        pytest.param(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            id="no-connection-upgrade",
        ),
    ],
)
async def test_bad_handshake_is_400(request_bytes: bytes, caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        status, headers, _ = parse_response(await exchange(server, request_bytes))
        assert status == 400
        assert headers["connection"] == "close"
    assert_logged_once(caplog, "bad WebSocket handshake")


@pytest.mark.parametrize("version", ["8", "14", ""])
async def test_unsupported_version_is_426(version: str, caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        data = await exchange(server, upgrade_request("/echo", version=version))
        status, headers, _ = parse_response(data)
        assert status == 426
        assert headers["sec-websocket-version"] == "13"
    assert_logged_once(caplog, "bad WebSocket handshake")


async def test_upgrade_to_an_unknown_path_is_404(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        assert parse_response(await exchange(server, upgrade_request("/nowhere")))[0] == 404
    assert_logged_at_most_once(caplog)


async def test_plain_get_on_a_websocket_path_is_426(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        data = await exchange(server, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = parse_response(data)
        assert status == 426
        assert headers["upgrade"].lower() == "websocket"
        assert headers["sec-websocket-version"] == "13"
    assert server_logs(caplog) == []


# ---- bad WebSocket traffic ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [MAX_MESSAGE_SIZE + 1, 1 << 20])
@pytest.mark.parametrize("path", ["/echo", "/shim"])
async def test_oversized_message_is_1009(
    path: str, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(caplog) as server:
        with anyio.fail_after(5):
            async with ws_connect(server.ws_url(path)) as ws:
                await ws.send("x" * MAX_MESSAGE_SIZE)
                assert await ws.recv() == "x" * MAX_MESSAGE_SIZE
                # A large message may still be going out when the close arrives: then the
                # send itself raises.
                with pytest.raises(ConnectionClosedError) as caught:
                    await send_and_receive(ws, b"x" * size)
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == 1009
    assert_logged_once(caplog, "with 1009")


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param(masked_frame(TEXT, b"\xff\xfe"), 1007, id="invalid-utf8"),
        pytest.param(
            masked_frame(TEXT, b"\xe2\x82", fin=False) + masked_frame(0x0, b"\xff"),
            1007,
            id="invalid-utf8-across-frames",
        ),
        pytest.param(b"\x81\x02hi", 1002, id="unmasked"),
        pytest.param(masked_frame(0x3, b""), 1002, id="reserved-opcode"),
        pytest.param(masked_frame(TEXT, b"x", rsv=4), 1002, id="rsv1-without-extension"),
        pytest.param(masked_frame(0x9, b"x" * 126), 1002, id="oversized-ping"),
        pytest.param(masked_frame(CLOSE, (1005).to_bytes(2, "big")), 1002, id="close-code-1005"),
        pytest.param(
            masked_frame(BINARY, bytes(MAX_MESSAGE_SIZE // 2), fin=False)
            + masked_frame(0x0, bytes(MAX_MESSAGE_SIZE // 2 + 1)),
            1009,
            id="fragmented-oversized",
        ),
    ],
)
@pytest.mark.parametrize("path", ["/echo", "/shim"])
async def test_bad_frames_are_closed_with_the_right_code(
    path: str, frames: bytes, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(caplog) as server:
        stream, rest = await open_websocket(server, path)
        async with stream:
            await stream.send(masked_frame(TEXT, b"ok"))
            with anyio.fail_after(5):
                while not parse_server_frames(rest):
                    rest += await stream.receive()
            assert parse_server_frames(rest) == [(TEXT, b"ok")]
            await stream.send(frames)
            received = await server_frames_until_eof(stream, b"")
        # One close frame with the code, then EOF (read_all returned): the server closes TCP.
        assert [opcode for opcode, _ in received] == [CLOSE]
        assert close_code(received[0][1]) == code
    assert_logged_once(caplog, f"with {code}")
    if path == "/shim":
        assert len(shim_events) == 2
        assert shim_events[0][0] == "error"
        assert f"failed with {code}" in str(shim_events[0][1])
        assert shim_events[1] == ("close", None)


async def test_stream_handler_that_raises_is_1011(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        with anyio.fail_after(5):
            async with ws_connect(server.ws_url("/boom")) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
                with pytest.raises(ConnectionClosedError) as caught:
                    await ws.recv()
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == 1011
    assert_logged_once(caplog, "WebSocket handler for /boom raised")


async def test_shim_handler_that_raises_is_1011(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        with anyio.fail_after(5):
            async with ws_connect(server.ws_url("/shim")) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
                await ws.send("boom")
                with pytest.raises(ConnectionClosedError) as caught:
                    await ws.recv()
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == 1011
    assert_logged_once(caplog, "on_message raised")
    # on_close sees the client's reply to our 1011, which websockets echoes.
    assert shim_events == [("error", "ValueError: boom"), ("close", (1011, "internal error"))]


@pytest.mark.parametrize("path", ["/echo", "/shim"])
async def test_frames_in_the_same_write_as_the_handshake_are_not_lost(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(caplog) as server:
        early = masked_frame(TEXT, b"first") + masked_frame(BINARY, b"\x00second")
        stream, rest = await open_websocket(server, path, after=early)
        async with stream:
            with anyio.fail_after(5):
                while len(parse_server_frames(rest)) < 2:
                    rest += await stream.receive()
            assert parse_server_frames(rest) == [(TEXT, b"first"), (BINARY, b"\x00second")]
            await stream.send(masked_frame(CLOSE, (1000).to_bytes(2, "big")))
            assert await server_frames_until_eof(stream, b"") == [(CLOSE, b"\x03\xe8")]
    assert server_logs(caplog) == []


@pytest.mark.parametrize(
    ("early", "code"),
    [
        pytest.param(b"\x81\x02hi", 1002, id="unmasked"),
        pytest.param(masked_frame(TEXT, b"\xc0"), 1007, id="invalid-utf8"),
        pytest.param(masked_frame(BINARY, bytes(MAX_MESSAGE_SIZE + 1)), 1009, id="too-big"),
        pytest.param(masked_frame(CLOSE, (4321).to_bytes(2, "big")), 4321, id="peer-close"),
    ],
)
@pytest.mark.parametrize("path", ["/echo", "/shim"])
async def test_bad_frame_in_the_same_write_as_the_handshake(
    path: str, early: bytes, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(caplog) as server:
        stream, rest = await open_websocket(server, path, after=early)
        async with stream:
            received = await server_frames_until_eof(stream, rest)
        assert [opcode for opcode, _ in received] == [CLOSE]
        assert close_code(received[0][1]) == code
    if code < 3000:
        assert_logged_once(caplog, f"with {code}")
    else:
        assert server_logs(caplog) == []


async def test_http_1_0_upgrade_is_400(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        request = upgrade_request("/echo").replace(b"HTTP/1.1", b"HTTP/1.0", 1)
        assert parse_response(await exchange(server, request))[0] == 400
    assert_logged_once(caplog, "bad WebSocket handshake")


@pytest.mark.parametrize("path", ["/echo", "/shim"])
async def test_peer_vanishing_without_close_frame(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(caplog) as server:
        stream, _ = await open_websocket(server, path)
        await stream.send(masked_frame(TEXT, b"half a messa", fin=False))
        await stream.aclose()
        await wait_for_no_connections(server)
    if path == "/shim":
        assert shim_events == [("close", None)]
    assert_logged_at_most_once(caplog)


async def test_many_bad_peers_at_once(caplog: pytest.LogCaptureFixture) -> None:
    answers: list[int] = []

    async def garbage(index: int) -> None:
        data = await exchange(server, b"\x00garbage %d\r\n\r\n" % index)
        answers.append(parse_response(data)[0])

    async def unmasked() -> None:
        stream, rest = await open_websocket(server)
        async with stream:
            await stream.send(b"\x81\x00")
            frames = await server_frames_until_eof(stream, rest)
        answers.append(close_code(frames[-1][1]) or 0)

    async with serving(caplog) as server:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as task_group:
                for index in range(25):
                    task_group.start_soon(garbage, index)
                    task_group.start_soon(unmasked)
    assert sorted(answers) == [400] * 25 + [1002] * 25
    lines = server_logs(caplog)
    assert sum("bad request from" in line for line in lines) == 25
    assert sum("with 1002" in line for line in lines) == 25
    assert len(lines) == 50


# ---- peers that misbehave before the handshake is answered ------------------------------------


@pytest.mark.parametrize("path", ["/slow", "/slowshim"])
async def test_frames_sent_before_a_slow_accept_are_kept(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(caplog) as server:
        stream, rest = await open_websocket(server, path, after=masked_frame(TEXT, b"eager"))
        async with stream:
            with anyio.fail_after(5):
                while not parse_server_frames(rest):
                    rest += await stream.receive()
            assert parse_server_frames(rest) == [(TEXT, b"eager")]
            await stream.send(masked_frame(CLOSE, (1000).to_bytes(2, "big")))
            assert await server_frames_until_eof(stream, b"") == [(CLOSE, b"\x03\xe8")]
    assert server_logs(caplog) == []


@pytest.mark.parametrize("path", ["/slow", "/slowshim"])
async def test_client_leaving_before_a_slow_accept(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(caplog) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            await stream.send(upgrade_request(path, port=server.port))
            await anyio.sleep(0.05)
        with anyio.fail_after(5):
            while not shim_events:
                await anyio.sleep(0.01)
        await wait_for_no_connections(server)
    # The stream handler is cancelled and its ``finally`` runs; the shim, whose on_connect ran,
    # gets its on_close (without a frame) so that whatever on_connect set up is released.
    assert shim_events == [("finally", None) if path == "/slow" else ("close", None)]
    assert_logged_at_most_once(caplog)


@pytest.mark.parametrize("path", ["/slow", "/slowshim"])
async def test_flood_before_a_slow_accept_is_bounded_and_1009(
    path: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(caplog) as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        async with stream:
            await stream.send(upgrade_request(path, port=server.port))
            await anyio.sleep(0.05)
            with anyio.fail_after(5):
                await stream.send(masked_frame(BINARY, bytes(300_000)))
                data = await read_all(stream)
        head, _, wire = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        frames = parse_server_frames(wire)
        assert [opcode for opcode, _ in frames] == [CLOSE]
        assert close_code(frames[0][1]) == 1009
    assert_logged_once(caplog, "with 1009")


@pytest.mark.parametrize("path", ["/slow", "/slowshim"])
async def test_half_close_before_a_slow_accept(path: str, caplog: pytest.LogCaptureFixture) -> None:
    async with (
        serving(caplog) as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(upgrade_request(path, port=server.port))
        await anyio.sleep(0.05)
        await stream.send(masked_frame(TEXT, b"last") + masked_frame(CLOSE, b"\x03\xe8"))
        await stream.send_eof()
        with anyio.fail_after(5):
            data = await read_all(stream)
    # A valid handshake never earns a 5xx, and WebSocket frames only ever follow a 101:
    # the server may drop the half-closed client silently, or finish the handshake.
    assert data == b"" or data.startswith(b"HTTP/1.1 101 "), data


# ---- peers that stop answering -----------------------------------------------------------------


async def ignore_pings(server: TestServerInfo) -> tuple[float, list[tuple[int, bytes]]]:
    """Upgrade, then never answer; return when the server closed TCP and what it sent."""
    stream, rest = await open_websocket(server)
    async with stream:
        started = time.monotonic()
        frames = await server_frames_until_eof(stream, rest)
        return time.monotonic() - started, frames


async def test_peer_that_ignores_pings_is_closed_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving(caplog, keepalive_app) as server:
        elapsed, frames = await ignore_pings(server)
    assert [opcode for opcode, _ in frames] == [PING, CLOSE]
    assert close_code(frames[-1][1]) == 1011
    assert 0.4 <= elapsed < 2.0  # ping after 0.2 s, pong overdue 0.3 s later


async def test_keepalive_timeout_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog, keepalive_app) as server:
        await ignore_pings(server)
    assert_logged_once(caplog, "keepalive ping timeout")


async def test_peer_that_never_answers_our_close_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serving(caplog) as server:
        stream, rest = await open_websocket(server, "/boom", after=masked_frame(TEXT, b"x"))
        async with stream:
            started = time.monotonic()
            frames = await server_frames_until_eof(stream, rest)  # never answering the close
            elapsed = time.monotonic() - started
    assert frames[0] == (TEXT, b"x")
    assert [opcode for opcode, _ in frames[1:]] == [CLOSE]
    assert close_code(frames[-1][1]) == 1011
    assert CLOSE_TIMEOUT - 0.1 <= elapsed < CLOSE_TIMEOUT + 1.5
    answers = [line for line in server_logs(caplog) if "did not answer our close" in line]
    assert len(answers) == 1


# ---- slow and silent peers ---------------------------------------------------------------------


async def test_silent_client_is_dropped_after_request_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with (
        serving(caplog) as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        started = time.monotonic()
        with anyio.fail_after(3):
            assert await read_all(stream) == b""
        assert 0.4 <= time.monotonic() - started < 2.5
    assert_logged_at_most_once(caplog)


@pytest.mark.parametrize("path", ["/hello", "/echo"])
async def test_slow_loris_is_dropped(path: str, caplog: pytest.LogCaptureFixture) -> None:
    async with serving(caplog) as server:
        async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
            started = time.monotonic()
            received = b""

            async def trickle() -> None:
                await stream.send(f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode())
                for index in range(100):
                    await anyio.sleep(0.05)
                    try:
                        await stream.send(b"X-%d: v\r\n" % index)
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                        return

            with anyio.fail_after(4):
                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(trickle)
                    received = await read_all(stream)
                    task_group.cancel_scope.cancel()
            elapsed = time.monotonic() - started
        assert elapsed < 2.5
        status, headers, _ = parse_response(received)
        assert status == 408
        assert headers["connection"] == "close"
    assert_logged_once(caplog, "timed out")
