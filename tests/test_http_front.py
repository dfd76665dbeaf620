"""The HTTP/1.1 front over raw loopback sockets: the rules h11 leaves to spikard.

RFC 9112 6.1 (ambiguous framing closes the connection), RFC 9110 5.5 (no control
characters in field values), 505 for versions other than 1.0/1.1, a 500 for a response
header that cannot be sent, reason phrases, ``Date`` and ``Server``, the listen backlog, and
the lingering close that lets a client still sending read an early error.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from email.utils import parsedate_to_datetime

import anyio
import anyio.abc
import pytest

from spikard import HTTPConfig, PlainTextResponse, Request, Spikard, WebSocketConfig

from .helpers import read_all

app = Spikard(http=HTTPConfig(max_body_size=1024, request_timeout=2.0))


@app.get("/")
async def index(request: Request) -> str:
    return "hello"


@app.post("/upload")
async def upload(request: Request) -> str:
    return f"{len(await request.body())} bytes"


@app.get("/omega")
async def omega(request: Request) -> PlainTextResponse:
    return PlainTextResponse("never sent", headers={"x-greek": "Ω"})


async def exchange(port: int, data: bytes, *, eof: bool = True) -> bytes:
    """Send ``data`` on a fresh connection; read until the server closes it."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        if eof:
            await stream.send_eof()
        with anyio.fail_after(5):
            return await read_all(stream)


def responses(data: bytes) -> list[tuple[str, dict[str, str], bytes]]:
    """Split the bytes of content-length-framed responses: (status line, headers, body)."""
    found = []
    while data:
        head, separator, data = data.partition(b"\r\n\r\n")
        assert separator, f"incomplete head {head!r}"
        status_line, *fields = head.decode("latin-1").split("\r\n")
        headers = {}
        for field in fields:
            name, _, value = field.partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0"))
        found.append((status_line, headers, data[:size]))
        data = data[size:]
    return found


async def test_content_length_with_transfer_encoding_closes_after_the_response() -> None:
    """RFC 9112 6.1: framed by Transfer-Encoding, then the connection closes."""
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    data = (
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + smuggled
    )
    async with app.test_server() as server:
        replies = responses(await exchange(server.port, data, eof=False))
    assert [(line, body) for line, _, body in replies] == [("HTTP/1.1 200 OK", b"3 bytes")]
    assert replies[0][1]["connection"] == "close"


async def test_a_request_with_only_one_framing_header_keeps_the_connection() -> None:
    data = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc" + (
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    async with app.test_server() as server:
        replies = responses(await exchange(server.port, data))
    assert [body for _, _, body in replies] == [b"3 bytes", b"hello"]


@pytest.mark.parametrize("value", [b"a\x07b", b"a\x7fb", b"\x1b[31m", b"\x01"])
async def test_control_characters_in_a_header_value_are_400(
    value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "spikard.http")
    async with app.test_server() as server:
        data = await exchange(
            server.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Note: " + value + b"\r\n\r\n"
        )
    ((line, headers, body),) = responses(data)
    assert line == "HTTP/1.1 400 Bad Request"
    assert headers["connection"] == "close"
    assert b"x-note" in body
    assert len([r for r in caplog.records if "control character" in r.getMessage()]) == 1


async def test_a_tab_in_a_header_value_is_fine() -> None:
    async with app.test_server() as server:
        data = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Note: a\tb\r\n\r\n")
    assert responses(data)[0][0] == "HTTP/1.1 200 OK"


@pytest.mark.parametrize("version", [b"9.9", b"2.0", b"1.2", b"0.9"])
async def test_unknown_http_versions_are_505(version: bytes) -> None:
    async with app.test_server() as server:
        data = await exchange(server.port, b"GET / HTTP/" + version + b"\r\nHost: x\r\n\r\n")
    ((line, headers, _),) = responses(data)
    assert line == "HTTP/1.1 505 HTTP Version Not Supported"
    assert headers["connection"] == "close"


async def test_http_1_0_is_served() -> None:
    async with app.test_server() as server:
        data = await exchange(server.port, b"GET / HTTP/1.0\r\n\r\n")
    ((line, _, body),) = responses(data)
    assert (line, body) == ("HTTP/1.1 200 OK", b"hello")


async def test_a_header_that_cannot_be_encoded_is_a_logged_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = b"GET /omega HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
    async with app.test_server() as server:
        replies = responses(await exchange(server.port, request))
    assert [(line, body) for line, _, body in replies] == [
        ("HTTP/1.1 500 Internal Server Error", b"Internal Server Error"),
        ("HTTP/1.1 200 OK", b"hello"),  # and the connection serves on
    ]
    logged = [r for r in caplog.records if "cannot be sent" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert "/omega" in logged[0].getMessage()


async def test_status_lines_have_reason_phrases_and_responses_a_date() -> None:
    async with app.test_server() as server:
        data = await exchange(server.port, b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
    ((line, headers, _),) = responses(data)
    assert line == "HTTP/1.1 404 Not Found"
    assert parsedate_to_datetime(headers["date"]).tzname() == "UTC"
    assert "server" not in headers  # none by default


async def test_the_server_header_is_configurable() -> None:
    named = Spikard(http=HTTPConfig(server_header="spikard"))

    @named.get("/")
    async def root(request: Request) -> str:
        return "hi"

    async with named.test_server() as server:
        data = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert responses(data)[0][1]["server"] == "spikard"


def test_a_bad_server_header_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="server_header"):
        HTTPConfig(server_header="spikard\r\nx-injected: 1")


def _listen_backlog(port: int) -> int:
    """The backlog of the socket listening on ``port`` (``ss`` shows it as Send-Q)."""
    output = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    backlogs = {int(line.split()[2]) for line in output.splitlines() if line.strip()}
    assert len(backlogs) == 1, output
    return backlogs.pop()


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2; .ci/run installs it)")
@pytest.mark.parametrize("backlog", [4096, 321])
async def test_the_listen_backlog_is_the_configured_one(backlog: int) -> None:
    configured = Spikard(http=HTTPConfig(backlog=backlog))
    async with configured.test_server() as server:
        await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the loop serves it
        assert _listen_backlog(server.port) == backlog


async def test_a_client_still_sending_reads_the_413() -> None:
    """Lingering close: the body over the limit is read and dropped, the client gets 413."""
    chunk = b"x" * 65536
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        for _ in range(16):  # the whole megabyte, as a client that does not read would
            await stream.send(chunk)
        with anyio.fail_after(5):
            data = await read_all(stream)
    ((line, headers, _),) = responses(data)
    assert line == "HTTP/1.1 413 Content Too Large"
    assert headers["connection"] == "close"


async def test_lingering_is_bounded_in_time() -> None:
    """A client that keeps the connection open after the error is closed after linger_timeout."""
    lingering = Spikard(http=HTTPConfig(max_body_size=10, linger_timeout=0.3))

    @lingering.post("/")
    async def root(request: Request) -> str:
        await request.body()  # the 413 comes from the first read of a body over the limit
        return "never"

    async with (
        lingering.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"y" * 20
        )
        started = anyio.current_time()
        with anyio.fail_after(5):
            data = await read_all(stream)  # ends when the server closes
        waited = anyio.current_time() - started
    assert responses(data)[0][0] == "HTTP/1.1 413 Content Too Large"
    assert 0.2 < waited < 3


async def test_a_whole_body_to_a_client_that_stopped_reading_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stalled = Spikard(http=HTTPConfig(write_timeout=0.5))
    big = b"x" * (32 * 1024 * 1024)

    @stalled.get("/big")
    async def send_big(request: Request) -> bytes:
        return big

    caplog.set_level(logging.INFO)
    async with stalled.test_server() as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        async with stream:
            await stream.send(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            await anyio.sleep(0.2)  # reads nothing: the kernel buffers fill, the write stalls
            with anyio.fail_after(10):
                while "stalled for" not in caplog.text:
                    await anyio.sleep(0.05)
            received = 0
            with anyio.fail_after(10):
                try:
                    while chunk := await stream.receive():
                        received += len(chunk)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    pass
    assert received < len(big)  # cut off: the connection was dropped, not finished


def test_allowed_origins_are_checked_when_configured() -> None:
    with pytest.raises(ValueError, match="is not an origin"):
        WebSocketConfig(allowed_origins=("app.example.com",))
    WebSocketConfig(allowed_origins=("https://*.example.com", "http://localhost:8000"))
