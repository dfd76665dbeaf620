"""FileResponse over real loopback sockets: framing, HEAD, validators, RFC 9110 conditional
requests (section 13) and range requests (section 14), and files that vanish or shrink.

Requests are written by hand on raw sockets so that every header is exactly what the test
says; :class:`RawClient` reads responses framed by ``content-length`` (a chunked response
fails the test: a file's length is always known).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import anyio
import anyio.abc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikard import Request, Spikard
from spikard.files import MAX_RANGES, FileResponse, content_disposition, parse_ranges

from ..helpers import read_all

pytestmark = pytest.mark.anyio

HELLO = b"hello, world\n"
DATA = bytes(range(256)) * 40  # 10240 bytes, every offset recognisable


# ---- a raw HTTP/1.1 client -------------------------------------------------------------------


@dataclass
class Reply:
    """One response: status, header fields (lower-case names; last value wins), body."""

    status: int
    headers: dict[str, str]
    fields: list[tuple[str, str]]
    body: bytes


class RawClient:
    """Requests written byte for byte on one connection; responses read by content-length."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, method: str, target: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
        await self.stream.send(f"{method} {target} HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode())

    async def _fill(self) -> None:
        data = await self.stream.receive()
        self.buffer += data

    async def reply(self, method: str = "GET") -> Reply:
        with anyio.fail_after(10):
            while b"\r\n\r\n" not in self.buffer:
                await self._fill()
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").split("\r\n")
            fields = []
            for line in lines:
                name, _, value = line.partition(":")
                fields.append((name.strip().lower(), value.strip()))
            headers = dict(fields)
            status = int(status_line.split()[1])
            assert "transfer-encoding" not in headers, "a file is framed by content-length"
            length = 0
            if method != "HEAD" and status not in (204, 304):
                length = int(headers["content-length"])
            while len(self.buffer) < length:
                await self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return Reply(status, headers, fields, body)

    async def request(
        self, method: str, target: str, headers: Iterable[tuple[str, str]] = ()
    ) -> Reply:
        await self.send(method, target, headers)
        return await self.reply(method)


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[RawClient]:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        yield RawClient(stream)


async def fetch(
    port: int, target: str, headers: Iterable[tuple[str, str]] = (), method: str = "GET"
) -> Reply:
    """One request on a fresh connection."""
    async with connect(port) as client:
        return await client.request(method, target, headers)


def multipart(reply: Reply) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a ``multipart/byteranges`` body: (headers, bytes), checked strictly."""
    kind, _, parameter = reply.headers["content-type"].partition("; ")
    assert kind == "multipart/byteranges"
    name, _, boundary = parameter.partition("=")
    assert name == "boundary"
    delimiter = b"--" + boundary.encode()
    body = reply.body
    assert body.startswith(delimiter + b"\r\n")
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n")
    chunks = body[: -len(delimiter) - 6].split(b"\r\n" + delimiter + b"\r\n")
    chunks[0] = chunks[0][len(delimiter) + 2 :]
    parts = []
    for chunk in chunks:
        head, _, data = chunk.partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n"))
        parts.append(({k.lower(): v for k, v in fields.items()}, data))
    return parts


# ---- the application -------------------------------------------------------------------------


def make_app(directory: Path) -> Spikard:
    app = Spikard()

    @app.get("/files/{name}")
    async def serve(request: Request, name: str) -> FileResponse:
        query = request.query_params
        return FileResponse(
            directory / name,
            int(query.get("status", "200")),
            headers={"cache-control": "max-age=60", "vary": "origin"},  # as a middleware might
            filename=query.get("filename"),
            content_disposition_type=query.get("disposition", "attachment"),
        )

    @app.post("/files/{name}")
    async def replace(request: Request, name: str) -> FileResponse:
        return FileResponse(directory / name)

    @app.get("/small-chunks/{name}")
    async def small_chunks(request: Request, name: str) -> FileResponse:
        return FileResponse(directory / name, chunk_size=1000)

    return app


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    (tmp_path / "hello.txt").write_bytes(HELLO)
    (tmp_path / "data.bin").write_bytes(DATA)
    (tmp_path / "page.html").write_text("<p>hi</p>")
    (tmp_path / "data.json").write_text("{}")
    (tmp_path / "archive.tar.gz").write_bytes(b"\x1f\x8b")
    (tmp_path / "noextension").write_bytes(b"?")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "folder").mkdir()
    old = time.time() - 3600  # an hour ago: its Last-Modified is a strong validator
    os.utime(tmp_path / "data.bin", (old, old))
    return tmp_path


@pytest.fixture
def app(directory: Path) -> Spikard:
    return make_app(directory)


def last_modified(path: Path) -> str:
    return formatdate(int(path.stat().st_mtime), usegmt=True)


# ---- the full response -----------------------------------------------------------------------


async def test_a_file_is_sent_whole_with_an_exact_length_and_validators(
    app: Spikard, directory: Path
) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/hello.txt")
    assert reply.status == 200
    assert reply.body == HELLO
    assert reply.headers["content-length"] == str(len(HELLO))
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.headers["accept-ranges"] == "bytes"
    assert reply.headers["cache-control"] == "max-age=60"
    assert reply.headers["etag"].startswith('"')
    assert reply.headers["etag"].endswith('"')
    assert "content-disposition" not in reply.headers
    sent = parsedate_to_datetime(reply.headers["last-modified"])
    assert int(sent.timestamp()) == int((directory / "hello.txt").stat().st_mtime)
    assert reply.headers["last-modified"].endswith(" GMT")


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("hello.txt", "text/plain; charset=utf-8"),
        ("page.html", "text/html; charset=utf-8"),
        ("data.json", "application/json"),
        ("archive.tar.gz", "application/gzip"),  # not "x-tar": it is sent as stored
        ("noextension", "application/octet-stream"),
    ],
)
async def test_the_content_type_is_guessed_from_the_name(
    app: Spikard, name: str, media_type: str
) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, f"/files/{name}")
    assert reply.status == 200
    assert reply.headers["content-type"] == media_type


async def test_the_etag_changes_with_the_file(app: Spikard, directory: Path) -> None:
    async with app.test_server() as server:
        before = (await fetch(server.port, "/files/hello.txt")).headers["etag"]
        (directory / "hello.txt").write_bytes(b"changed and longer\n")
        after = await fetch(server.port, "/files/hello.txt")
    assert after.body == b"changed and longer\n"
    assert after.headers["etag"] != before


async def test_head_sends_the_same_head_and_never_opens_the_file(
    app: Spikard, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spikard import files

    opened: list[str] = []
    original = files._FileBody._open

    def counting_open(self: files._FileBody) -> object:
        opened.append(self.path)
        return original(self)

    monkeypatch.setattr(files._FileBody, "_open", counting_open)
    async with app.test_server() as server, connect(server.port) as client:
        head = await client.request("HEAD", "/files/data.bin")
        assert opened == []
        full = await client.request("GET", "/files/data.bin")  # same connection: framing held
    assert head.status == full.status == 200
    assert head.body == b""
    without_date = {k: v for k, v in head.headers.items() if k != "date"}
    assert without_date == {k: v for k, v in full.headers.items() if k != "date"}
    assert head.headers["content-length"] == str(len(DATA))
    assert full.body == DATA
    assert len(opened) == 1


async def test_a_3_mib_file_arrives_intact(app: Spikard, directory: Path) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    (directory / "big.bin").write_bytes(content)
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/big.bin")
    assert reply.headers["content-length"] == str(len(content))
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(content).digest()


async def test_chunks_smaller_than_the_file_add_up(app: Spikard) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/small-chunks/data.bin")
        part = await fetch(server.port, "/small-chunks/data.bin", [("Range", "bytes=999-3001")])
    assert reply.body == DATA
    assert part.body == DATA[999:3002]


async def test_an_empty_file_is_an_empty_body_and_has_no_ranges(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        whole = await client.request("GET", "/files/empty.txt")
        ranged = await client.request("GET", "/files/empty.txt", [("Range", "bytes=-5")])
    assert (whole.status, whole.body, whole.headers["content-length"]) == (200, b"", "0")
    assert (ranged.status, ranged.body) == (200, b"")


async def test_an_http_1_0_client_gets_a_length_framed_body(app: Spikard) -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(b"GET /files/hello.txt HTTP/1.0\r\n\r\n")
        with anyio.fail_after(5):
            data = await read_all(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-length: 13" in head.lower()
    assert body == HELLO


async def download(app: Spikard, target: str) -> tuple[bytes, int]:
    """GET ``target``, counting the body's bytes without keeping them: (head, count)."""
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        with anyio.fail_after(60):
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, rest = data.partition(b"\r\n\r\n")
            received = len(rest)
            while True:
                try:
                    received += len(await stream.receive(1 << 20))
                except anyio.EndOfStream:
                    return head, received


async def test_a_memory_bound_download_of_a_sparse_100_mib_file(
    app: Spikard, directory: Path
) -> None:
    """Flat memory: the server reads chunk by chunk as the socket drains (a sparse file, so
    nothing is written to disk); the client counts bytes and keeps none."""
    size = 100 * 1024 * 1024
    (directory / "sparse.bin").touch()
    os.truncate(directory / "sparse.bin", size)
    tracemalloc.start()
    try:
        head, received = await download(app, "/files/sparse.bin")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"content-length: {size}".encode() in head
    assert received == size
    assert peak < 16 * 1024 * 1024, f"{peak} bytes allocated at the peak"


# ---- content-disposition ---------------------------------------------------------------------


async def test_a_filename_makes_an_attachment(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        plain = await client.request("GET", "/files/data.bin?filename=report.bin")
        inline = await client.request(
            "GET", "/files/page.html?filename=page.html&disposition=inline"
        )
    assert plain.headers["content-disposition"] == 'attachment; filename="report.bin"'
    assert plain.headers["content-type"] == "application/octet-stream"
    assert inline.headers["content-disposition"] == 'inline; filename="page.html"'


async def test_a_non_ascii_filename_gets_the_rfc_8187_form(app: Spikard) -> None:
    async with app.test_server() as server:
        target = "/files/data.bin?filename=r%C3%A9sum%C3%A9%20%E2%82%AC.pdf"
        reply = await fetch(server.port, target)
    assert reply.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_ _.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E2%82%AC.pdf"
    )
    assert reply.headers["content-type"] == "application/pdf"  # guessed from the filename


def test_content_disposition_quotes_and_controls() -> None:
    assert content_disposition('a"b\\c.txt') == (
        "attachment; filename=\"a_b_c.txt\"; filename*=UTF-8''a%22b%5Cc.txt"
    )
    assert content_disposition("evil\r\nname.txt") == 'attachment; filename="evilname.txt"'
    with pytest.raises(ValueError, match="token"):
        content_disposition("a.txt", "attachment; x=1")


def test_bad_arguments_are_refused_at_construction(directory: Path) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        FileResponse(directory / "hello.txt", chunk_size=0)
    with pytest.raises(ValueError, match="token"):
        FileResponse(directory / "hello.txt", content_disposition_type="in line")


# ---- conditional requests (RFC 9110 section 13) ----------------------------------------------


async def test_if_none_match_answers_304_with_validators_and_no_body(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        full = await client.request("GET", "/files/hello.txt")
        etag = full.headers["etag"]
        cached = await client.request("GET", "/files/hello.txt", [("If-None-Match", etag)])
        again = await client.request("GET", "/files/hello.txt")  # keep-alive after a 304
    assert cached.status == 304
    assert cached.body == b""
    assert cached.headers["etag"] == etag
    assert cached.headers["last-modified"] == full.headers["last-modified"]
    assert cached.headers["cache-control"] == "max-age=60"
    assert "content-length" not in cached.headers
    assert "content-type" not in cached.headers
    assert again.status == 200
    assert again.body == HELLO


@pytest.mark.parametrize(
    "value",
    [
        "{etag}",
        "W/{etag}",  # weak comparison: W/ does not matter
        '"other", {etag}',
        '"other",{etag}  ',
        "*",
    ],
)
async def test_if_none_match_forms(app: Spikard, value: str) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        etag = (await client.request("GET", "/files/hello.txt")).headers["etag"]
        reply = await client.request(
            "GET", "/files/hello.txt", [("If-None-Match", value.format(etag=etag))]
        )
    assert reply.status == 304


async def test_if_none_match_in_two_fields_is_one_list(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        etag = (await client.request("GET", "/files/hello.txt")).headers["etag"]
        reply = await client.request(
            "GET", "/files/hello.txt", [("If-None-Match", '"a"'), ("If-None-Match", etag)]
        )
    assert reply.status == 304


async def test_a_different_etag_gets_the_file(app: Spikard) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/hello.txt", [("If-None-Match", '"nope"')])
    assert (reply.status, reply.body) == (200, HELLO)


async def test_head_with_a_matching_etag_is_304(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        etag = (await client.request("HEAD", "/files/hello.txt")).headers["etag"]
        reply = await client.request("HEAD", "/files/hello.txt", [("If-None-Match", etag)])
    assert reply.status == 304


async def test_if_none_match_on_a_post_fails_with_412(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        etag = (await client.request("GET", "/files/hello.txt")).headers["etag"]
        await client.send(
            "POST", "/files/hello.txt", [("If-None-Match", etag), ("Content-Length", "0")]
        )
        reply = await client.reply()
    assert reply.status == 412


async def test_if_modified_since_answers_304_when_not_newer(app: Spikard, directory: Path) -> None:
    stamp = int((directory / "data.bin").stat().st_mtime)
    async with app.test_server() as server, connect(server.port) as client:
        same = await client.request(
            "GET", "/files/data.bin", [("If-Modified-Since", formatdate(stamp, usegmt=True))]
        )
        later = await client.request(
            "GET", "/files/data.bin", [("If-Modified-Since", formatdate(stamp + 60, usegmt=True))]
        )
        earlier = await client.request(
            "GET", "/files/data.bin", [("If-Modified-Since", formatdate(stamp - 1, usegmt=True))]
        )
    assert same.status == 304
    assert "last-modified" in same.headers
    assert later.status == 304
    assert earlier.status == 200
    assert earlier.body == DATA


@pytest.mark.parametrize(
    "form",
    [
        "%a, %d %b %Y %H:%M:%S GMT",  # IMF-fixdate
        "%A, %d-%b-%y %H:%M:%S GMT",  # obsolete RFC 850
        "%a %b %d %H:%M:%S %Y",  # obsolete asctime
    ],
)
async def test_if_modified_since_reads_the_three_date_forms(
    app: Spikard, directory: Path, form: str
) -> None:
    stamp = int((directory / "data.bin").stat().st_mtime)
    value = time.strftime(form, time.gmtime(stamp))
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/data.bin", [("If-Modified-Since", value)])
    assert reply.status == 304


async def test_if_modified_since_is_ignored_when_invalid_or_after_if_none_match(
    app: Spikard, directory: Path
) -> None:
    future = formatdate(time.time() + 3600, usegmt=True)
    async with app.test_server() as server, connect(server.port) as client:
        invalid = await client.request("GET", "/files/data.bin", [("If-Modified-Since", "soon")])
        shadowed = await client.request(
            "GET",
            "/files/data.bin",
            [("If-None-Match", '"not-it"'), ("If-Modified-Since", future)],
        )
    assert invalid.status == 200
    assert shadowed.status == 200  # RFC 9110 13.1.3: ignored when If-None-Match is present


async def test_if_match_fails_with_412_unless_it_matches_strongly(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        etag = (await client.request("GET", "/files/hello.txt")).headers["etag"]
        wrong = await client.request("GET", "/files/hello.txt", [("If-Match", '"wrong"')])
        weak = await client.request("GET", "/files/hello.txt", [("If-Match", f"W/{etag}")])
        right = await client.request("GET", "/files/hello.txt", [("If-Match", etag)])
        star = await client.request("GET", "/files/hello.txt", [("If-Match", "*")])
    assert wrong.status == 412
    assert weak.status == 412  # If-Match uses the strong comparison
    assert (right.status, right.body) == (200, HELLO)
    assert star.status == 200


async def test_if_unmodified_since(app: Spikard, directory: Path) -> None:
    stamp = int((directory / "data.bin").stat().st_mtime)
    before = formatdate(stamp - 10, usegmt=True)
    async with app.test_server() as server, connect(server.port) as client:
        etag = (await client.request("GET", "/files/data.bin")).headers["etag"]
        changed = await client.request("GET", "/files/data.bin", [("If-Unmodified-Since", before)])
        unchanged = await client.request(
            "GET", "/files/data.bin", [("If-Unmodified-Since", formatdate(stamp, usegmt=True))]
        )
        overruled = await client.request(
            "GET", "/files/data.bin", [("If-Match", etag), ("If-Unmodified-Since", before)]
        )
    assert changed.status == 412
    assert unchanged.status == 200
    assert overruled.status == 200  # RFC 9110 13.1.4: ignored when If-Match is present


async def test_if_match_is_evaluated_before_if_none_match(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        etag = (await client.request("GET", "/files/hello.txt")).headers["etag"]
        reply = await client.request(
            "GET", "/files/hello.txt", [("If-Match", '"wrong"'), ("If-None-Match", etag)]
        )
    assert reply.status == 412


async def test_an_error_status_ignores_preconditions_and_ranges(app: Spikard) -> None:
    """RFC 9110 13.2.1: preconditions apply to what would otherwise be a 2xx."""
    async with app.test_server() as server:
        reply = await fetch(
            server.port,
            "/files/page.html?status=404",
            [("If-None-Match", "*"), ("Range", "bytes=0-1")],
        )
    assert reply.status == 404
    assert reply.body == b"<p>hi</p>"
    assert "etag" not in reply.headers
    assert "accept-ranges" not in reply.headers


# ---- range requests (RFC 9110 section 14) ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "start", "stop"),
    [
        ("bytes=0-4", 0, 5),
        ("bytes=100-199", 100, 200),
        ("bytes=-5", len(DATA) - 5, len(DATA)),  # suffix
        ("bytes=10000-", 10000, len(DATA)),  # open-ended
        ("bytes=10000-99999", 10000, len(DATA)),  # last-pos clamped
        ("bytes=-99999", 0, len(DATA)),  # suffix longer than the file
        ("BYTES=3-3", 3, 4),  # the unit is case-insensitive
        ("bytes= 7-8 ", 7, 9),  # optional whitespace in the list
        ("bytes=0-1,,", 0, 2),  # empty list elements
        ("bytes=0-99999999999999999999999999999", 0, len(DATA)),
    ],
)
async def test_one_range_is_a_206(app: Spikard, value: str, start: int, stop: int) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/data.bin", [("Range", value)])
    assert reply.status == 206
    assert reply.body == DATA[start:stop]
    assert reply.headers["content-length"] == str(stop - start)
    assert reply.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(DATA)}"
    assert reply.headers["content-type"] == "application/octet-stream"
    assert "etag" in reply.headers


@pytest.mark.parametrize(
    "value",
    [
        "bytes=10240-",
        "bytes=99999-100000",
        "bytes=-0",
        "bytes=20000-,-0",
        "bytes=" + "9" * 5000 + "-",
    ],
)
async def test_an_unsatisfiable_range_is_a_416(app: Spikard, value: str) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        reply = await client.request("GET", "/files/data.bin", [("Range", value)])
        after = await client.request("GET", "/files/hello.txt")  # the connection lives on
    assert reply.status == 416
    assert reply.headers["content-range"] == f"bytes */{len(DATA)}"
    assert after.body == HELLO


async def test_error_answers_keep_the_fields_not_about_the_file(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        unsatisfiable = await client.request("GET", "/files/data.bin", [("Range", "bytes=-0")])
        failed = await client.request("GET", "/files/data.bin", [("If-Match", '"other"')])
        missing = await client.request("GET", "/files/nothing.txt")
        etag = (await client.request("HEAD", "/files/data.bin")).headers["etag"]
        cached = await client.request("GET", "/files/data.bin", [("If-None-Match", etag)])
    for reply in (unsatisfiable, failed, missing):
        assert reply.headers["vary"] == "origin"
        assert reply.headers["content-type"] == "text/plain; charset=utf-8"
        for name in ("etag", "last-modified", "cache-control", "accept-ranges"):
            assert name not in reply.headers, (reply.status, name)
    assert (unsatisfiable.status, failed.status, missing.status) == (416, 412, 404)
    assert cached.headers["vary"] == "origin"
    assert cached.headers["cache-control"] == "max-age=60"


@pytest.mark.parametrize(
    "value",
    [
        "bytes=5-2",  # last-pos before first-pos
        "bytes=abc",
        "bytes=1-2-3",
        "bytes=",
        "bytes=-",
        "bytes=,",
        "items=0-1",  # another unit
        "bytes 0-1",
        "0-1",
        "bytes=0-1;2-3",
        "bytes=+1-2",
        "bytes=0x10-0x20",
        "bytes = 0-1",
    ],
)
async def test_a_malformed_range_is_ignored(app: Spikard, value: str) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/data.bin", [("Range", value)])
    assert reply.status == 200
    assert reply.body == DATA


async def test_two_range_fields_are_ignored(app: Spikard) -> None:
    async with app.test_server() as server:
        reply = await fetch(
            server.port, "/files/data.bin", [("Range", "bytes=0-1"), ("Range", "bytes=2-3")]
        )
    assert reply.status == 200


async def test_several_ranges_are_multipart_byteranges_in_the_order_asked(app: Spikard) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/data.bin", [("Range", "bytes=500-599,0-9,-3")])
    assert reply.status == 206
    assert "content-range" not in reply.headers
    assert int(reply.headers["content-length"]) == len(reply.body)
    parts = multipart(reply)
    size = len(DATA)
    assert [part[0]["content-range"] for part in parts] == [
        f"bytes 500-599/{size}",
        f"bytes 0-9/{size}",
        f"bytes {size - 3}-{size - 1}/{size}",
    ]
    assert [part[1] for part in parts] == [DATA[500:600], DATA[0:10], DATA[-3:]]
    assert all(part[0]["content-type"] == "application/octet-stream" for part in parts)


async def test_unsatisfiable_ranges_among_others_are_dropped(app: Spikard) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/data.bin", [("Range", "bytes=0-0,99999-")])
    assert reply.status == 206
    assert reply.headers["content-range"] == f"bytes 0-0/{len(DATA)}"
    assert reply.body == DATA[:1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-5,3-8", [(0, 9)]),  # overlapping: merged
        ("bytes=0-4,5-9", [(0, 10)]),  # touching: merged
        ("bytes=20-29,0-4,3-6", [(0, 7), (20, 30)]),  # merging sorts
        ("bytes=0-9,0-9,0-9", [(0, 10)]),
    ],
)
async def test_overlapping_ranges_are_coalesced(
    app: Spikard, value: str, expected: list[tuple[int, int]]
) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/data.bin", [("Range", value)])
    assert reply.status == 206
    if len(expected) == 1:
        (start, stop), size = expected[0], len(DATA)
        assert reply.headers["content-range"] == f"bytes {start}-{stop - 1}/{size}"
        assert reply.body == DATA[start:stop]
    else:
        assert [data for _, data in multipart(reply)] == [DATA[a:b] for a, b in expected]


async def test_more_than_max_ranges_get_the_whole_file(app: Spikard) -> None:
    many = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES + 1))
    enough = ",".join(f"{i * 10}-{i * 10 + 1}" for i in range(MAX_RANGES))
    async with app.test_server() as server, connect(server.port) as client:
        refused = await client.request("GET", "/files/data.bin", [("Range", f"bytes={many}")])
        served = await client.request("GET", "/files/data.bin", [("Range", f"bytes={enough}")])
    assert (refused.status, refused.body) == (200, DATA)
    assert served.status == 206
    assert len(multipart(served)) == MAX_RANGES


async def test_head_ignores_range(app: Spikard) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/data.bin", [("Range", "bytes=0-1")], "HEAD")
    assert reply.status == 200
    assert reply.headers["content-length"] == str(len(DATA))


async def test_if_range_with_the_current_etag_allows_the_range(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        etag = (await client.request("HEAD", "/files/data.bin")).headers["etag"]
        same = await client.request(
            "GET", "/files/data.bin", [("Range", "bytes=0-1"), ("If-Range", etag)]
        )
        other = await client.request(
            "GET", "/files/data.bin", [("Range", "bytes=0-1"), ("If-Range", '"old"')]
        )
        weak = await client.request(
            "GET", "/files/data.bin", [("Range", "bytes=0-1"), ("If-Range", f"W/{etag}")]
        )
        ignored_416 = await client.request(
            "GET", "/files/data.bin", [("Range", "bytes=99999-"), ("If-Range", '"old"')]
        )
    assert (same.status, same.body) == (206, DATA[:2])
    assert (other.status, other.body) == (200, DATA)  # changed since: the whole new file
    assert weak.status == 200  # If-Range compares strongly
    assert ignored_416.status == 200


async def test_if_range_with_a_date(app: Spikard, directory: Path) -> None:
    exact = last_modified(directory / "data.bin")
    async with app.test_server() as server, connect(server.port) as client:
        same = await client.request(
            "GET", "/files/data.bin", [("Range", "bytes=0-1"), ("If-Range", exact)]
        )
        stamp = int((directory / "data.bin").stat().st_mtime)
        later = formatdate(stamp + 1, usegmt=True)
        other = await client.request(
            "GET", "/files/data.bin", [("Range", "bytes=0-1"), ("If-Range", later)]
        )
        garbage = await client.request(
            "GET", "/files/data.bin", [("Range", "bytes=0-1"), ("If-Range", "yesterday")]
        )
    assert (same.status, same.body) == (206, DATA[:2])
    assert other.status == 200  # an If-Range date must match exactly
    assert garbage.status == 200


async def test_if_range_with_the_date_of_a_file_still_changing_is_weak(
    app: Spikard, directory: Path
) -> None:
    """RFC 9110 8.8.2.2: a Last-Modified within the current second may change again."""
    future = time.time() + 30  # the file's second is not over yet (not for 30 s)
    os.utime(directory / "hello.txt", (future, future))
    async with app.test_server() as server, connect(server.port) as client:
        head = await client.request("HEAD", "/files/hello.txt")
        reply = await client.request(
            "GET",
            "/files/hello.txt",
            [("Range", "bytes=0-1"), ("If-Range", head.headers["last-modified"])],
        )
    sent = parsedate_to_datetime(head.headers["last-modified"]).timestamp()
    assert sent <= time.time()  # RFC 9110 8.8.2.1: never later than the response's Date
    assert reply.status == 200


async def test_keep_alive_survives_a_206_then_a_304(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        partial = await client.request("GET", "/files/data.bin", [("Range", "bytes=1-3")])
        multi = await client.request("GET", "/files/data.bin", [("Range", "bytes=1-3,9-9")])
        etag = partial.headers["etag"]
        cached = await client.request("GET", "/files/data.bin", [("If-None-Match", etag)])
        full = await client.request("GET", "/files/data.bin")
    assert (partial.status, partial.body) == (206, DATA[1:4])
    assert [data for _, data in multipart(multi)] == [DATA[1:4], DATA[9:10]]
    assert cached.status == 304
    assert (full.status, full.body) == (200, DATA)


async def test_pipelined_requests_each_get_their_response(app: Spikard) -> None:
    async with app.test_server() as server, connect(server.port) as client:
        await client.send("GET", "/files/data.bin", [("Range", "bytes=0-0")])
        await client.send("HEAD", "/files/data.bin")
        await client.send("GET", "/files/hello.txt")
        first = await client.reply()
        second = await client.reply("HEAD")
        third = await client.reply()
    assert (first.status, first.body) == (206, DATA[:1])
    assert (second.status, second.body) == (200, b"")
    assert third.body == HELLO


@given(st.text(max_size=60), st.integers(0, 5000))
def test_parse_ranges_never_raises_and_stays_in_the_file(value: str, size: int) -> None:
    ranges = parse_ranges(value, size)
    if ranges is None:
        return
    assert len(ranges) <= MAX_RANGES
    for start, stop in ranges:
        assert 0 <= start < stop <= size


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), min_size=1, max_size=16))
def test_parse_ranges_coalesces_into_disjoint_ranges(pairs: list[tuple[int, int]]) -> None:
    value = "bytes=" + ",".join(f"{min(a, b)}-{max(a, b)}" for a, b in pairs)
    ranges = parse_ranges(value, 200)
    assert ranges is not None
    wanted = {i for a, b in pairs for i in range(min(a, b), min(max(a, b) + 1, 200))}
    assert {i for start, stop in ranges for i in range(start, stop)} == wanted
    ordered = sorted(ranges)
    assert all(left[1] < right[0] for left, right in itertools.pairwise(ordered))


# ---- files that are not there, or change ------------------------------------------------------


async def test_a_file_deleted_before_the_request_is_a_404_logged_once(
    app: Spikard, directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (directory / "gone.txt").write_bytes(b"soon gone")
    async with app.test_server() as server:
        assert (await fetch(server.port, "/files/gone.txt")).status == 200
        (directory / "gone.txt").unlink()
        caplog.clear()
        reply = await fetch(server.port, "/files/gone.txt")
        head = await fetch(server.port, "/files/gone.txt", method="HEAD")
    assert reply.status == 404
    assert head.status == 404
    logged = [r for r in caplog.records if r.name == "spikard.files"]
    assert len(logged) == 2  # once per request
    assert "gone.txt" in logged[0].getMessage()


async def test_a_path_with_a_nul_byte_is_404_not_a_crash(directory: Path) -> None:
    app = Spikard()

    @app.get("/named/{name}")
    async def named(request: Request, name: str) -> FileResponse:
        return FileResponse(directory / name)  # an unchecked name from the URL

    async with app.test_server() as server:
        reply = await fetch(server.port, "/named/hello.txt%00.png")
    assert reply.status == 404


async def test_a_directory_is_not_a_file(app: Spikard) -> None:
    async with app.test_server() as server:
        reply = await fetch(server.port, "/files/folder")
    assert reply.status == 404


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
async def test_an_unreadable_file_is_a_500(app: Spikard, directory: Path) -> None:
    locked = directory / "locked.txt"
    locked.write_bytes(b"secret")
    locked.chmod(0)
    async with app.test_server() as server:
        get = await fetch(server.port, "/files/locked.txt")
        head = await fetch(server.port, "/files/locked.txt", method="HEAD")
    assert get.status == head.status == 500
    assert b"secret" not in get.body


async def test_a_file_the_server_may_not_read_is_a_500_logged_once(
    app: Spikard, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """As root every file is readable, so the permission check itself is stood in for."""
    from spikard import files

    monkeypatch.setattr(files, "_readable", lambda path: not path.endswith("data.bin"))
    async with app.test_server() as server:
        caplog.clear()
        get = await fetch(server.port, "/files/data.bin")
        head = await fetch(server.port, "/files/data.bin", method="HEAD")
        other = await fetch(server.port, "/files/hello.txt")
    assert get.status == head.status == 500
    assert DATA[:16] not in get.body
    assert other.status == 200
    logged = [r for r in caplog.records if r.name == "spikard.files"]
    assert len(logged) == 2
    assert all(r.levelno == logging.ERROR for r in logged)


async def test_a_file_that_shrinks_while_sent_aborts_the_response(
    app: Spikard, directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The client must see a cut body, not a short one passed off as whole."""
    size = 16 * 1024 * 1024  # more than the socket buffers hold, so the server must wait
    path = directory / "shrinking.bin"
    path.touch()
    os.truncate(path, size)
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(b"GET /files/shrinking.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(10):
            data = await stream.receive()
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            os.truncate(path, 1024 * 1024)
            data += await read_all(stream)  # ends: the server aborted the connection
    head, _, body = data.partition(b"\r\n\r\n")
    assert f"content-length: {size}".encode() in head
    assert len(body) < size
    logged = [r for r in caplog.records if "streamed response body" in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].exc_info is not None
    assert "shrank" in str(logged[0].exc_info[1])


async def test_a_file_replaced_after_the_head_aborts_the_response(
    directory: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The head describes one file; if another is at the path when the body starts (an
    atomic deploy), its bytes are not sent under the old length and ETag."""
    app = Spikard()
    path = directory / "hello.txt"

    @app.get("/swap")
    async def swap(request: Request) -> FileResponse:
        response = FileResponse(path, stat_result=path.stat())
        fresh = directory / "fresh.txt"
        fresh.write_bytes(b"a new release\n")
        fresh.replace(path)  # a new inode at the same path
        return response

    async with app.test_server() as server, await anyio.connect_tcp("127.0.0.1", server.port) as s:
        await s.send(b"GET /swap HTTP/1.1\r\nHost: x\r\n\r\n")
        with anyio.fail_after(5):
            data = await read_all(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert f"content-length: {len(HELLO)}".encode() in head
    assert body == b""
    assert any("replaced" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_the_repr_names_the_file(directory: Path) -> None:
    assert repr(FileResponse(directory / "hello.txt")).endswith("hello.txt'>")
