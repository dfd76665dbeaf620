"""Fuzzing the HTTP front and the WebSocket reader of a real loopback server with hypothesis.

One server runs for the whole module, on asyncio, in a background thread (an anyio blocking
portal); the hypothesis tests are plain synchronous functions that talk to it with blocking
sockets, so each example is one short TCP conversation and no event loop is shared with
hypothesis. Every conversation sends its bytes, half-closes, and reads until the server closes.

Properties:

1. **HTTP front** (arbitrary bytes, and mutations of valid requests: bit flips, inserted,
   deleted, duplicated and truncated spans, bare LF for CRLF, case swaps): the server answers
   with zero or more well-formed HTTP/1.1 responses whose statuses are expected ones (never a
   500), a ``connection: close`` response is the last thing on the wire, and after a ``101`` only
   well-formed server frames follow, ending (if at all) with a close frame carrying a code that
   may be sent on the wire.
2. **WebSocket reader** (after a valid handshake, in a separate write or in the same one:
   arbitrary bytes, and mostly well-formed frame sequences with random opcodes, flags, lengths,
   close codes, masks and flipped bits): every server frame is final and unmasked; the data
   frames echo a prefix of the messages the sans-I/O ``WebSocketProtocol`` extracts from the same
   bytes, pongs echo a prefix of its pongs, and the connection ends exactly as the sans-I/O
   protocol says: a close frame with its failure code (1002, 1007, 1009), an echo of the peer's
   close, or, when the bytes left the protocol open, EOF without a close frame.
3. **Survival**: no conversation hangs past its timeout, nothing is logged at WARNING or above
   by the server (no crashed connection task), the server still echoes afterwards, and its
   connection count returns to zero.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikard import HTTPConfig, Request, Spikard, WebSocket, WebSocketConfig, WebSocketMessage
from spikard.messages import validate_close_code
from spikard.protocol.websocket import ProtocolState, WebSocketProtocol
from spikard.testing.server import TestServerInfo

from .helpers import close_code, masked_frame, parse_server_frames, upgrade_request

MAX_MESSAGE_SIZE = 256
TIMEOUT = 5.0
TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA

FUZZ_SETTINGS = settings(
    max_examples=75,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

app = Spikard(
    http=HTTPConfig(request_timeout=1.0, keep_alive_timeout=0.5, max_body_size=4096),
    websocket=WebSocketConfig(max_message_size=MAX_MESSAGE_SIZE, close_timeout=1.0),
)


@app.websocket("/echo")
async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message


@app.route("/hello", methods=["GET", "POST"])
async def hello(request: Request) -> str:
    return f"hello {len(await request.body())}"


# ---- the server in a background thread ---------------------------------------------------------


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class FuzzServer:
    portal: BlockingPortal
    info: TestServerInfo
    recorder: _Recorder

    @property
    def port(self) -> int:
        return self.info.port

    def connection_count(self) -> int:
        server = self.info.server
        assert server is not None
        return self.portal.call(lambda: server.connection_count)

    def assert_healthy(self) -> None:
        """The server logged no trouble, still echoes, and holds no connection."""
        problems = [f"{r.name}: {r.getMessage()}" for r in self.recorder.records]
        assert problems == []
        assert_echoes(self.port)
        deadline = time.monotonic() + TIMEOUT
        while self.connection_count() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.connection_count() == 0


def assert_echoes(port: int) -> None:
    """A polite client: handshake, one message and its echo, close handshake, EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(upgrade_request("/echo", port=port))
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        head, _, wire = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        sock.sendall(masked_frame(TEXT, b"still here"))
        while not parse_server_frames(wire):
            wire += sock.recv(65536)
        assert parse_server_frames(wire) == [(TEXT, b"still here")]
        sock.sendall(masked_frame(CLOSE, b"\x03\xe8"))
        wire = b""
        while chunk := sock.recv(65536):
            wire += chunk
        assert parse_server_frames(wire) == [(CLOSE, b"\x03\xe8")]


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[FuzzServer]:
    recorder = _Recorder()
    logger = logging.getLogger("spikard")
    logger.addHandler(recorder)
    try:
        with (
            start_blocking_portal("asyncio") as portal,
            portal.wrap_async_context_manager(app.test_server()) as info,
        ):
            yield FuzzServer(portal, info, recorder)
    finally:
        logger.removeHandler(recorder)


# ---- blocking conversations --------------------------------------------------------------------


def converse(port: int, data: bytes, *, prefix: bytes = b"") -> bytes:
    """Send ``prefix`` and ``data`` (separate writes), half-close, read until EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        received = b""
        if prefix:
            sock.sendall(prefix)
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                assert chunk, f"server closed during the handshake: {received!r}"
                received += chunk
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server already answered and closed; read what it said
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received


def websocket_conversation(
    server: FuzzServer, data: bytes, *, same_write: bool = False
) -> list[tuple[int, bytes]]:
    """Upgrade on /echo, send ``data`` (in the handshake's write or after the 101), return the
    server's frames; checks that they are whole, final and unmasked."""
    handshake = upgrade_request("/echo", port=server.port)
    if same_write:
        received = converse(server.port, handshake + data)
    else:
        received = converse(server.port, data, prefix=handshake)
    head, _, wire = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), received
    return check_server_frames(wire)


def check_server_frames(wire: bytes) -> list[tuple[int, bytes]]:
    frames = parse_server_frames(wire)
    offset = 0
    for opcode, payload in frames:
        assert wire[offset] == 0x80 | opcode, "server frames are final, without RSV bits"
        assert not wire[offset + 1] & 0x80, "server frames are unmasked"
        length = len(payload)
        offset += (2 if length < 126 else 4 if length < 1 << 16 else 10) + length
    assert offset == len(wire), f"trailing bytes after the server's frames: {wire[offset:]!r}"
    opcodes = [opcode for opcode, _ in frames]
    assert set(opcodes) <= {TEXT, BINARY, CLOSE, PONG}
    assert CLOSE not in opcodes[:-1], "nothing may follow a close frame"
    if opcodes[-1:] == [CLOSE]:
        payload = frames[-1][1]
        if payload:
            code = close_code(payload)
            assert code is not None
            validate_close_code(code)
            payload[2:].decode("utf-8")
    return frames


# ---- HTTP front ------------------------------------------------------------------------------

SEEDS = [
    b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /hello?x=1&y=%20 HTTP/1.1\r\nHost: a\r\nCookie: a=b; c\r\nAccept: */*\r\n\r\n",
    b"POST /hello HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /hello HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /hello HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /hello HTTP/1.0\r\n\r\n",
    b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n" + upgrade_request("/echo") + masked_frame(TEXT, b"x"),
    b"DELETE /hello HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /nowhere HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    upgrade_request("/echo") + masked_frame(TEXT, b"hi") + masked_frame(CLOSE, b"\x03\xe8"),
    upgrade_request("/echo", version="8"),
    upgrade_request("/nowhere"),
    upgrade_request("/echo", extra="Sec-WebSocket-Protocol: a, b\r\n"),
]

# 100 and 101 are interim or switching; 200 from /hello; the rest are the error answers the
# server is built to give. A 500 would mean the server itself failed.
EXPECTED_STATUSES = {100, 101, 200, 400, 404, 405, 408, 413, 426, 431, 501, 505}
_STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r\n]*")


@st.composite
def mutated_request(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(
            st.sampled_from(
                ["flip", "insert", "delete", "duplicate", "truncate", "lf", "case", "byte"]
            )
        )
        start = draw(st.integers(0, len(data) - 1))
        end = draw(st.integers(start, min(len(data), start + 40)))
        if kind == "flip":
            data[start] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[start:start] = draw(st.binary(min_size=1, max_size=40))
        elif kind == "delete":
            del data[start:end]
        elif kind == "duplicate":
            data[start:start] = data[start:end] * draw(st.integers(1, 50))
        elif kind == "truncate":
            del data[start:]
        elif kind == "lf":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n", draw(st.integers(1, 3))))
        elif kind == "case":
            data[start:end] = bytes(data[start:end]).swapcase()
        else:
            data[start] = draw(st.sampled_from(b'\x00\r\n :;,"\x7f\xff\t'))
    return bytes(data)


def check_http_answer(received: bytes) -> None:
    """Zero or more well-formed responses; ``connection: close`` or a 101 ends the HTTP part."""
    rest = received
    while rest:
        head, separator, after = rest.partition(b"\r\n\r\n")
        assert separator, f"incomplete response head: {rest!r}"
        status_line, *lines = head.split(b"\r\n")
        match = _STATUS_LINE.fullmatch(status_line)
        assert match, f"bad status line {status_line!r}"
        status = int(match.group(1))
        assert status in EXPECTED_STATUSES, received
        headers: dict[bytes, bytes] = {}
        for line in lines:
            name, colon, value = line.partition(b":")
            assert colon, f"bad header line {line!r}"
            assert name, f"bad header line {line!r}"
            assert name == name.strip(), f"bad header line {line!r}"
            headers[name.lower()] = value.strip()
        if status == 101:
            check_server_frames(after)
            return
        if status == 100:
            rest = after
            continue
        length = int(headers[b"content-length"])
        assert len(after) >= length, f"body shorter than content-length: {received!r}"
        rest = after[length:]
        if headers.get(b"connection", b"").lower() == b"close":
            assert rest == b"", f"bytes after a connection: close response: {rest!r}"


def test_http_front_survives_arbitrary_and_mutated_bytes(fuzz_server: FuzzServer) -> None:
    @FUZZ_SETTINGS
    @given(st.one_of(mutated_request(), st.binary(max_size=600)))
    def conversation(data: bytes) -> None:
        check_http_answer(converse(fuzz_server.port, data))

    conversation()
    fuzz_server.assert_healthy()


# ---- WebSocket reader --------------------------------------------------------------------------


@st.composite
def frame_sequence(draw: st.DrawFn) -> bytes:
    """Client frames, mostly well-formed, with random opcodes, flags, sizes and bit flips."""
    wire = bytearray()
    for _ in range(draw(st.integers(1, 8))):
        opcode = draw(
            st.sampled_from([TEXT, TEXT, BINARY, BINARY, CONTINUATION, PING, PONG, CLOSE, 0x3, 0xB])
        )
        if opcode == CLOSE and draw(st.booleans()):
            code = draw(
                st.one_of(
                    st.sampled_from([1000, 1001, 1005, 1011, 3000, 4999]), st.integers(0, 5100)
                )
            )
            payload = code.to_bytes(2, "big") + draw(st.text(max_size=10)).encode()
        elif opcode == TEXT and draw(st.booleans()):
            payload = draw(st.text(max_size=80)).encode()
        else:
            payload = draw(
                st.one_of(
                    st.binary(max_size=140),
                    st.binary(min_size=MAX_MESSAGE_SIZE - 20, max_size=MAX_MESSAGE_SIZE + 20),
                )
            )
        wire += masked_frame(
            opcode,
            payload,
            fin=draw(st.booleans()) if opcode in (TEXT, BINARY, CONTINUATION) else True,
            rsv=draw(st.sampled_from([0, 0, 0, 0, 1, 4])),
            mask=draw(st.binary(min_size=4, max_size=4)),
        )
    for _ in range(draw(st.integers(0, 2))):
        index = draw(st.integers(0, len(wire) - 1))
        wire[index] ^= 1 << draw(st.integers(0, 7))
    if draw(st.booleans()):
        del wire[draw(st.integers(0, len(wire))) :]
    return bytes(wire)


def test_websocket_reader_survives_arbitrary_and_mutated_frames(fuzz_server: FuzzServer) -> None:
    @FUZZ_SETTINGS
    @given(st.one_of(frame_sequence(), st.binary(max_size=300)), st.booleans())
    def conversation(data: bytes, same_write: bool) -> None:
        oracle = WebSocketProtocol(max_message_size=MAX_MESSAGE_SIZE)
        messages = [
            (TEXT, event.data.encode()) if isinstance(event.data, str) else (BINARY, event.data)
            for event in oracle.receive_data(data)
            if isinstance(event, WebSocketMessage)
        ]
        if oracle.state is ProtocolState.FAILING:
            oracle.close()  # the server sends the error close after its replies
        replies = parse_server_frames(oracle.data_to_send())
        pongs = [frame for frame in replies if frame[0] == PONG]
        oracle_closes = [payload for opcode, payload in replies if opcode == CLOSE]

        frames = websocket_conversation(fuzz_server, data, same_write=same_write)

        echoed = [frame for frame in frames if frame[0] in (TEXT, BINARY)]
        assert echoed == messages[: len(echoed)]
        answered = [frame for frame in frames if frame[0] == PONG]
        assert answered == pongs[: len(answered)]
        closes = [payload for opcode, payload in frames if opcode == CLOSE]
        if oracle.state is ProtocolState.OPEN:
            assert closes == [], "the client only half-closed TCP: no close frame is due"
        else:
            # A failure (1002, 1007, 1009) or the echo of the peer's close, as sans-I/O says.
            assert oracle.state is ProtocolState.CLOSED
            assert closes == oracle_closes
            assert len(closes) == 1
            if oracle.failure is not None:
                assert close_code(closes[0]) in (1002, 1007, 1009)

    conversation()
    fuzz_server.assert_healthy()
