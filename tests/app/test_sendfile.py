"""Files through ``sendfile``: where asyncio's loop allows it, a ``FileResponse`` is handed to
the kernel slice by slice instead of being read into Python.

The read-and-write path is the reference: for random files and ranges the bytes a client
reads are the same with ``sendfile`` on and off. uvloop and trio have no ``sendfile`` for
these transports: the file still arrives whole. A client that stops reading is dropped after
``write_timeout``; one that reads slowly but steadily gets the whole file, however long that
takes.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path

import anyio
import pytest

from spikard import FileResponse, HTTPConfig, Request, Spikard
from spikard.connection.asyncio_driver import AsyncioTransport
from spikard.connection.transport import SendfileUnavailable

from ..helpers import read_all


@pytest.fixture
def anyio_backend() -> str:
    """asyncio's own loop: the one with ``sendfile`` (uvloop is tried below)."""
    return "asyncio"


_DATE = re.compile(rb"date: [^\r]*\r\n")
_BOUNDARY = re.compile(rb"[0-9a-f]{32}")


def make_app(directory: Path, **config: float) -> Spikard:
    app = Spikard(http=HTTPConfig(**config))  # type: ignore[arg-type]

    @app.get("/files/{name}")
    async def file(request: Request) -> FileResponse:
        return FileResponse(directory / request.path_params["name"], chunk_size=65536)

    return app


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The byte counts of every sendfile call that went through."""
    found: list[int] = []
    original = AsyncioTransport.sendfile

    async def counting(self: AsyncioTransport, file: object, offset: int, count: int) -> int:
        sent = await original(self, file, offset, count)  # type: ignore[arg-type]
        found.append(sent)
        return sent

    monkeypatch.setattr(AsyncioTransport, "sendfile", counting)
    return found


async def fetch(port: int, request: bytes) -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request)
        with anyio.fail_after(20):
            data = _DATE.sub(b"date: -\r\n", await read_all(stream))
            return _BOUNDARY.sub(b"boundary", data)


def get(name: str, *headers: str) -> bytes:
    fields = "".join(f"{header}\r\n" for header in headers)
    return f"GET /files/{name} HTTP/1.1\r\nHost: x\r\n{fields}Connection: close\r\n\r\n".encode()


async def test_a_file_goes_out_through_sendfile(tmp_path: Path, calls: list[int]) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "blob.bin").write_bytes(content)
    async with make_app(tmp_path).test_server() as server:
        data = await fetch(server.port, get("blob.bin"))
    assert data.partition(b"\r\n\r\n")[2] == content
    assert sum(calls) == len(content)  # every byte, none through Python


async def test_sendfile_sends_what_reading_and_writing_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: list[int]
) -> None:
    rng = random.Random(20261204)
    requests = []
    for n in range(12):
        size = rng.choice([0, 1, 1000, 65536, 65537, 300_000])
        (tmp_path / f"f{n}").write_bytes(rng.randbytes(size))
        ranges = rng.choice(
            ["", "Range: bytes=0-0", "Range: bytes=10-", "Range: bytes=-70000",
             "Range: bytes=0-9,20-29", "Range: bytes=65530-65545", "Range: bytes=999999-"]
        )  # fmt: skip
        requests.append(get(f"f{n}", ranges) if ranges else get(f"f{n}"))
    app = make_app(tmp_path)
    async with app.test_server() as server:
        through_sendfile = [await fetch(server.port, request) for request in requests]
    assert calls  # the path under test was taken

    async def unavailable(self: AsyncioTransport, file: object, offset: int, count: int) -> int:
        raise SendfileUnavailable

    monkeypatch.setattr(AsyncioTransport, "sendfile", unavailable)
    async with app.test_server() as server:
        written = [await fetch(server.port, request) for request in requests]
    assert through_sendfile == written
    assert any(b" 206 " in data for data in written)
    assert any(b"multipart/byteranges" in data for data in written)


@pytest.mark.parametrize(
    "anyio_backend", [pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop")]
)
async def test_without_sendfile_the_file_still_arrives_whole(tmp_path: Path) -> None:
    pytest.importorskip("uvloop")
    content = os.urandom(1024 * 1024 + 3)
    (tmp_path / "blob.bin").write_bytes(content)
    async with make_app(tmp_path).test_server() as server:
        data = await fetch(server.port, get("blob.bin"))
    assert data.partition(b"\r\n\r\n")[2] == content


async def test_a_client_that_stops_reading_is_dropped_after_write_timeout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, calls: list[int]
) -> None:
    caplog.set_level(logging.INFO, logger="spikard")
    path = tmp_path / "big.bin"
    path.touch()
    os.truncate(path, 256 * 1024 * 1024)  # far more than every socket buffer
    async with (
        make_app(tmp_path, write_timeout=0.5).test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(get("big.bin"))
        await anyio.sleep(2)  # read nothing for four times write_timeout
        with anyio.fail_after(10):
            body = await read_all(stream)
    assert calls
    assert len(body) < 256 * 1024 * 1024
    stalled = [r for r in caplog.records if "stalled" in r.getMessage()]
    assert len(stalled) == 1


async def test_a_slow_steady_reader_gets_the_whole_file(tmp_path: Path) -> None:
    content = os.urandom(8 * 1024 * 1024)
    (tmp_path / "blob.bin").write_bytes(content)
    started = anyio.current_time()
    async with (
        make_app(tmp_path, write_timeout=1.0).test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(get("blob.bin"))
        data = b""
        with anyio.fail_after(30):
            # A few MiB/s: the download outlasts write_timeout, while the kernel wakes the
            # writer only when a third of its send buffer is free (a fraction of a second).
            while True:
                try:
                    data += await stream.receive(65536)
                except anyio.EndOfStream:
                    break
                await anyio.sleep(0.01)
    assert data.partition(b"\r\n\r\n")[2] == content
    assert anyio.current_time() - started > 1.0


async def test_shutdown_during_a_stalled_sendfile_is_bounded(
    tmp_path: Path, calls: list[int]
) -> None:
    path = tmp_path / "big.bin"
    path.touch()
    os.truncate(path, 256 * 1024 * 1024)
    app = make_app(tmp_path, write_timeout=30, shutdown_timeout=0.5)
    with anyio.fail_after(5):  # not write_timeout: shutdown aborts the stalled send
        async with (
            app.test_server() as server,
            await anyio.connect_tcp("127.0.0.1", server.port) as stream,
        ):
            await stream.send(get("big.bin"))
            await anyio.sleep(0.5)  # the kernel's buffers fill; sendfile waits
            assert server.server is not None
            server.server.shutdown()
            await read_all(stream)  # the connection ends
    assert calls


async def test_a_client_that_vanishes_mid_file_leaves_the_server_serving(
    tmp_path: Path, calls: list[int]
) -> None:
    path = tmp_path / "big.bin"
    path.touch()
    os.truncate(path, 64 * 1024 * 1024)
    (tmp_path / "small.txt").write_bytes(b"still here")
    async with make_app(tmp_path).test_server() as server:
        for _ in range(3):
            async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
                await stream.send(get("big.bin"))
                await stream.receive()  # the download has started; then the client leaves
        data = await fetch(server.port, get("small.txt"))
    assert data.endswith(b"\r\n\r\nstill here")
