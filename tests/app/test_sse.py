"""Server-Sent Events: the wire format, @app.sse and EventSourceResponse, keepalive, resume."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import EventSourceResponse, Request, RoutingError, ServerSentEvent, Spikard
from spikard.sse import encode_event

from ..helpers import read_until

app = Spikard()


@app.sse("/feed", ping=0.2)
async def feed(request: Request) -> AsyncIterator[object]:
    start = int(request.last_event_id or 0)
    yield ServerSentEvent(f"after {start}", event="hello", id=str(start + 1), retry=500)
    yield "two\nlines"
    yield {"n": [1, 2]}
    await anyio.sleep_forever()  # only keepalive comments from here on


@app.get("/returned")
async def returned(request: Request) -> EventSourceResponse:
    async def events() -> AsyncIterator[str]:
        yield "only"

    return EventSourceResponse(events(), ping=None)


def test_events_are_framed_line_by_line() -> None:
    event = ServerSentEvent("a\nb\r\nc", event="update", id="7", retry=1000, comment="note")
    assert event.encode() == (
        b": note\nevent: update\nid: 7\nretry: 1000\ndata: a\ndata: b\ndata: c\n\n"
    )
    assert encode_event("plain") == b"data: plain\n\n"
    assert encode_event({"k": "ü"}) == 'data: {"k":"ü"}\n\n'.encode()
    assert encode_event(ServerSentEvent(retry=3000)) == b"retry: 3000\n\n"


@pytest.mark.parametrize(
    "kwargs", [{"id": "a\nb"}, {"event": "x\ry"}, {"id": "a\0b"}, {"retry": -1}]
)
def test_bad_fields_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"line break|NUL|non-negative"):
        ServerSentEvent("data", **kwargs)  # type: ignore[arg-type]


def test_values_that_are_not_json_are_a_clear_error() -> None:
    with pytest.raises(TypeError, match="not JSON-serializable"):
        encode_event(object())


def test_sse_needs_an_async_generator() -> None:
    with pytest.raises(RoutingError, match="async generator function"):

        @app.sse("/wrong")
        async def wrong(request: Request) -> str:
            return "no"


async def read_stream(port: int, target: str, extra: str = "", until: bytes = b"") -> bytes:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        with anyio.fail_after(5):
            return await read_until(stream, until)


async def test_an_sse_route_streams_events_and_keepalive_comments() -> None:
    async with app.test_server() as server:
        data = await read_stream(server.port, "/feed", until=b": ping\n\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"content-type: text/event-stream" in head.lower()
    assert b"cache-control: no-cache" in head.lower()
    assert b"event: hello\nid: 1\nretry: 500\ndata: after 0\n\n" in body
    assert b"data: two\ndata: lines\n\n" in body
    assert b'data: {"n":[1,2]}\n\n' in body


async def test_last_event_id_lets_the_handler_resume() -> None:
    async with app.test_server() as server:
        data = await read_stream(
            server.port, "/feed", extra="Last-Event-ID: 41\r\n", until=b"data: after 41\n\n"
        )
    assert b"id: 42" in data


async def test_a_returned_event_source_response_streams() -> None:
    async with app.test_server() as server:
        data = await read_stream(server.port, "/returned", until=b"data: only\n\n")
    assert b"data: only\n\n" in data
