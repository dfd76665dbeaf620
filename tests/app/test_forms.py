"""``request.form()`` over real loopback sockets: urlencoded and multipart bodies, uploaded
files (one spilled to disk, all closed after the response), limits, malformed multipart, and
the parser fed in random chunkings (hypothesis)."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import anyio
import anyio.abc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikard import HTTPConfig, PlainTextResponse, Request, Spikard
from spikard.errors import ContentTooLarge, InvalidBody
from spikard.forms import SPOOL_SIZE, FormData, UploadFile, parse_form

from ..helpers import read_all

app = Spikard(http=HTTPConfig(max_body_size=8 * 1024 * 1024, linger_timeout=0.3))
kept: list[UploadFile] = []
"""The files a handler saw, to check after the response that they were closed."""

BOUNDARY = "----spikard-test-boundary"


@pytest.fixture(autouse=True)
def _forget_files() -> None:
    kept.clear()


async def describe(value: str | UploadFile) -> Any:
    if isinstance(value, str):
        return value
    content = await value.read()
    await value.seek(0)
    again = await value.read(5)
    return {
        "filename": value.filename,
        "content_type": value.content_type,
        "size": value.size,
        "read": len(content),
        "same": (
            content == bytes(range(256)) * (len(content) // 256)
            if value.filename == "big.bin"
            else content.decode()
        ),
        "again": again.decode("latin-1"),
        "in_memory": value.in_memory,
        "disposition": value.headers.get("content-disposition"),
    }


@app.post("/form")
async def form_route(request: Request) -> PlainTextResponse:
    options = {name: int(value) for name, value in request.query_params.items()}
    form = await request.form(**options)
    assert await request.form() is form  # the same FormData again
    items = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            kept.append(value)
        items.append([name, await describe(value)])
    return PlainTextResponse(json.dumps(items))


def multipart(
    *parts: tuple[str, str | tuple[str, str | None, bytes]], boundary: str = BOUNDARY
) -> bytes:
    """Encode fields ``(name, text)`` and files ``(name, (filename, content_type, bytes))``."""
    body = b""
    for name, value in parts:
        body += f"--{boundary}\r\n".encode()
        if isinstance(value, str):
            body += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            body += value.encode() + b"\r\n"
        else:
            filename, content_type, content = value
            body += (
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            ).encode()
            if content_type is not None:
                body += f"Content-Type: {content_type}\r\n".encode()
            body += b"\r\n" + content + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def post(path: str, content_type: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


async def exchange(port: int, data: bytes) -> tuple[int, str]:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(data)
        with anyio.fail_after(10):
            reply = await read_all(stream)
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
URLENCODED = "application/x-www-form-urlencoded"


async def test_urlencoded_form() -> None:
    body = b"a=1&b=x+y&a=%C3%A9t%C3%A9&empty=&flag&sym=%26%3D%2B"
    async with app.test_server() as server:
        status, text = await exchange(server.port, post("/form", URLENCODED, body))
    assert status == 200
    assert json.loads(text) == [
        ["a", "1"],
        ["b", "x y"],
        ["a", "été"],
        ["empty", ""],
        ["flag", ""],
        ["sym", "&=+"],
    ]


async def test_multipart_fields_and_two_files_one_spilled_to_disk() -> None:
    big = bytes(range(256)) * (SPOOL_SIZE // 256 + 2048)  # over 1 MiB
    body = multipart(
        ("title", "héllo"),
        ("small", ("notes.txt", "text/plain", b"some notes")),
        ("title", "again"),
        ("big", ("big.bin", "application/octet-stream", big)),
    )
    async with app.test_server() as server:
        status, text = await exchange(server.port, post("/form", MULTIPART, body))
        assert status == 200, text
        with anyio.fail_after(5):  # closed by the server once the response went
            while not all(upload.file.closed for upload in kept):
                await anyio.sleep(0.01)
    items = json.loads(text)
    assert [name for name, _ in items] == ["title", "small", "title", "big"]
    assert items[0][1] == "héllo"
    assert items[2][1] == "again"
    small, large = items[1][1], items[3][1]
    assert small == {
        "filename": "notes.txt",
        "content_type": "text/plain",
        "size": 10,
        "read": 10,
        "same": "some notes",
        "again": "some ",
        "in_memory": True,
        "disposition": 'form-data; name="small"; filename="notes.txt"',
    }
    assert large["filename"] == "big.bin"
    assert large["content_type"] == "application/octet-stream"
    assert large["size"] == large["read"] == len(big)
    assert large["same"] is True
    assert large["again"] == "\x00\x01\x02\x03\x04"
    assert large["in_memory"] is False  # spilled to a temporary file
    assert len(kept) == 2


async def test_a_multipart_body_sent_chunked_in_odd_pieces() -> None:
    body = multipart(("a", "1"), ("f", ("x.txt", None, b"file body")), ("b", "2"))
    pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    head = (
        f"POST /form HTTP/1.1\r\nHost: x\r\nContent-Type: {MULTIPART}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    ).encode()
    async with app.test_server() as server:
        status, text = await exchange(server.port, head + chunked)
    assert status == 200
    items = json.loads(text)
    assert items[0] == ["a", "1"]
    assert items[2] == ["b", "2"]
    assert items[1][1]["same"] == "file body"
    assert items[1][1]["content_type"] is None


@pytest.mark.parametrize(
    ("query", "content_type", "body", "status", "detail"),
    [
        (
            "?max_fields=2",
            MULTIPART,
            multipart(("a", "1"), ("b", "2"), ("c", "3")),
            400,
            "more than 2 form fields",
        ),
        (
            "?max_files=1",
            MULTIPART,
            multipart(("f", ("1.txt", None, b"1")), ("g", ("2.txt", None, b"2"))),
            400,
            "more than 1 files",
        ),
        (
            "?max_part_size=10",
            MULTIPART,
            multipart(("a", "0123456789"), ("b", "0123456789X")),
            413,
            "over 10 bytes",
        ),
        ("?max_fields=2", URLENCODED, b"a=1&b=2&c=3", 400, "more than 2 form fields"),
        ("?max_part_size=3", URLENCODED, b"a=123&b=1234", 413, "over 3 bytes"),
    ],
    ids=["fields", "files", "part-size", "urlencoded-fields", "urlencoded-size"],
)
async def test_form_limits(
    query: str, content_type: str, body: bytes, status: int, detail: str
) -> None:
    async with app.test_server() as server:
        got, text = await exchange(server.port, post("/form" + query, content_type, body))
    assert (got, detail in text) == (status, True), text


@pytest.mark.parametrize(
    ("content_type", "body", "status", "detail"),
    [
        (MULTIPART, multipart(("a", "1"))[: -len(f"--{BOUNDARY}--\r\n")], 400, "closing boundary"),
        (MULTIPART, b"--" + BOUNDARY.encode() + b"garbage\r\n\r\n", 400, "malformed multipart"),
        (
            MULTIPART,
            f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
            400,
            "Content-Disposition",
        ),
        ("multipart/form-data", multipart(("a", "1")), 400, "needs a boundary"),
        ("application/json", b"{}", 415, "Unsupported Media Type"),
    ],
    ids=["truncated", "garbage", "no-disposition", "no-boundary", "json"],
)
async def test_malformed_or_unsupported_forms(
    content_type: str, body: bytes, status: int, detail: str
) -> None:
    async with app.test_server() as server:
        got, text = await exchange(server.port, post("/form", content_type, body))
    assert got == status, text
    assert detail in text


async def _chunks(data: bytes, cuts: list[int]) -> Any:
    bounds = [0, *sorted({cut % (len(data) + 1) for cut in cuts}), len(data)]
    for start, end in itertools.pairwise(bounds):
        if end > start:
            yield data[start:end]


async def _normalized(form: FormData) -> list[tuple[str, object]]:
    result: list[tuple[str, object]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            await value.seek(0)
            result.append((name, (value.filename, value.content_type, await value.read())))
        else:
            result.append((name, value))
    await form.close()
    return result


field_names = st.text(st.characters(codec="utf-8", exclude_characters='"\r\n\\'), min_size=1)
field_values = st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=40)
file_values = st.tuples(
    st.text(st.characters(codec="utf-8", exclude_characters='"\r\n\\'), max_size=12),
    st.none() | st.sampled_from(["text/plain", "image/png", "application/octet-stream"]),
    st.binary(max_size=300),
)
form_parts = st.lists(st.tuples(field_names, field_values | file_values), max_size=6)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=form_parts, cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_chunking_of_a_multipart_body_parses_the_same(
    backend: str, parts: list[tuple[str, Any]], cuts: list[int]
) -> None:
    body = multipart(*parts)

    async def parse(pieces: list[int]) -> list[tuple[str, object]]:
        return await _normalized(await parse_form(MULTIPART, _chunks(body, pieces)))

    whole = anyio.run(parse, [], backend=backend)
    assert whole == parts  # what was encoded comes back, files as (filename, type, bytes)
    assert anyio.run(parse, cuts, backend=backend) == whole


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
async def test_files_are_closed_when_parsing_fails() -> None:
    fds = "/proc/self/fd"
    big = b"z" * (SPOOL_SIZE + 10)
    body = multipart(("big", ("big.bin", None, big)))[:-4] + b"XX\r\n"  # a broken end
    before = len(os.listdir(fds))
    with pytest.raises(InvalidBody, match="closing boundary"):
        await parse_form(MULTIPART, _chunks(body, [SPOOL_SIZE // 2]))
    assert len(os.listdir(fds)) == before  # the temporary file was closed


async def test_a_too_large_field_raises_content_too_large() -> None:
    with pytest.raises(ContentTooLarge):
        await parse_form(MULTIPART, _chunks(multipart(("a", "x" * 100)), [3, 50]), max_part_size=99)


def test_form_data_is_an_immutable_multi_dict() -> None:
    form = FormData([("a", "1"), ("b", "2"), ("a", "3")])
    assert form["a"] == "1"
    assert form.getlist("a") == ["1", "3"]
    assert form.get("missing") is None
    assert list(form) == ["a", "b"]
    assert len(form) == 2
    assert "b" in form
    assert form.multi_items() == [("a", "1"), ("b", "2"), ("a", "3")]
    assert form == FormData(form.multi_items())
    with pytest.raises(TypeError):
        form["a"] = "x"  # type: ignore[index]
