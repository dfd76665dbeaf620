"""HTTP routes of a spikard app under real ASGI servers, with a real client (httpx)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from ..helpers import read_until
from .apps import FILE
from .servers import Served
from .test_websocket import BOUND, recorded, wait_recorded

pytestmark = pytest.mark.anyio


def client(server: Served) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, timeout=BOUND)


async def test_routes_params_and_bodies(any_server: Served) -> None:
    async with client(any_server) as http:
        hello = await http.get("/hello", params={"name": "ada"})
        assert (hello.status_code, hello.text) == (200, "hello ada at /hello")
        assert hello.headers["content-type"] == "text/plain; charset=utf-8"
        item = await http.get("/items/5", params={"q": "hat", "limit": "3"})
        assert item.json() == {"id": 5, "q": "hat", "limit": 3}
        bad = await http.get("/items/5", params={"limit": "many"})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["query", "limit"]
        point = await http.post("/points", json={"x": 2, "y": 40})
        assert point.json() == {"sum": 42}
        malformed = await http.post("/points", content=b"{not json")
        assert malformed.status_code == 400
        assert (await http.get("/no/such/page")).status_code == 404
        wrong = await http.post("/hello")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "GET, HEAD"


async def test_a_handler_that_raises_answers_500(any_server: Served) -> None:
    async with client(any_server) as http:
        response = await http.get("/fail")
        assert response.status_code == 500
        assert (await http.get("/hello")).status_code == 200  # the server goes on


async def test_lifespan_ran_and_set_state(any_server: Served) -> None:
    async with client(any_server) as http:
        assert (await http.get("/state")).json() == {
            "greeting": "hello from lifespan",
            "broker": True,
        }
    assert "startup" in await recorded(any_server)


async def test_streaming_response(any_server: Served) -> None:
    async with client(any_server) as http, http.stream("GET", "/stream", params={"n": 5}) as got:
        assert got.headers["content-type"].startswith("text/plain")
        assert "content-length" not in got.headers
        assert [line async for line in got.aiter_lines()] == ["0", "1", "2", "3", "4"]


async def read_then_leave(server: Served, path: str, until: bytes) -> bytes:
    """GET ``path`` over a raw socket, read until ``until`` appears, then drop TCP.

    (httpx leaves its generators to the garbage collector when a stream is left early.)
    """
    with anyio.fail_after(BOUND):
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        async with stream:
            await stream.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            return await read_until(stream, until)


async def test_sse_stops_when_the_client_leaves(any_server: Served) -> None:
    before = await recorded(any_server)
    received = await read_then_leave(any_server, "/sse", b"id: 2\n")
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"text/event-stream" in head.lower()
    assert b'event: tick\nid: 0\ndata: {"n": 0}\n\n' in body
    await wait_recorded(any_server, "sse closed", before=before)


async def test_a_handler_is_told_when_its_client_leaves_before_the_answer(
    any_server: Served,
) -> None:
    before = await recorded(any_server)
    with anyio.fail_after(BOUND):
        stream = await anyio.connect_tcp("127.0.0.1", any_server.port)
        async with stream:
            await stream.send(b"GET /long-poll HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await anyio.sleep(0.2)
    await wait_recorded(any_server, "long-poll left True", before=before)


async def test_files_whole_head_and_ranges(any_server: Served) -> None:
    data = FILE.read_bytes()
    async with client(any_server) as http:
        whole = await http.get("/file")
        assert whole.content == data
        head = await http.head("/file")
        assert head.headers["content-length"] == str(len(data))
        assert head.content == b""
        part = await http.get("/file", headers={"range": "bytes=10-19"})
        assert (part.status_code, part.content) == (206, data[10:20])
        etag = whole.headers["etag"]
        assert (await http.get("/file", headers={"if-none-match": etag})).status_code == 304


async def test_head_of_a_streamed_route_never_starts_it(uvicorn_server: Served) -> None:
    async with client(uvicorn_server) as http:
        head = await http.head("/stream")
        assert (head.status_code, head.content) == (200, b"")


async def test_streamed_response_stops_when_the_client_leaves(uvicorn_server: Served) -> None:
    before = await recorded(uvicorn_server)
    await read_then_leave(uvicorn_server, "/forever", b"x" * 1024)
    await wait_recorded(uvicorn_server, "forever closed", before=before)


@pytest.mark.parametrize("kind", ["uvicorn", "hypercorn"])
async def test_streamed_upload(kind: str, request: pytest.FixtureRequest) -> None:
    server: Served = request.getfixturevalue(f"{kind}_server")

    async def parts() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"u" * 10_000
            await anyio.sleep(0.001)

    async with client(server) as http:
        response = await http.post("/upload", content=parts())  # chunked
        assert response.json() == {"size": 200_000}
        sized = await http.post("/upload", content=b"v" * 5000)
        assert sized.json() == {"size": 5000}


async def test_body_over_max_body_size_is_413(uvicorn_server: Served) -> None:
    async with client(uvicorn_server) as http:
        response = await http.post("/upload", content=b"w" * (2 * 1024 * 1024))
        assert response.status_code == 413
        assert (await http.get("/hello")).status_code == 200


async def test_websocket_route_over_plain_http_is_426(uvicorn_server: Served) -> None:
    async with client(uvicorn_server) as http:
        response = await http.get("/echo")
        assert response.status_code == 426
        assert response.headers["upgrade"] == "websocket"


async def test_json_list_of_events(uvicorn_server: Served) -> None:
    async with client(uvicorn_server) as http:
        response = await http.get("/events")
        assert isinstance(json.loads(response.content), list)
