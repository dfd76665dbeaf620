"""The ASGI driver and bridge against a scripted ASGI server (no sockets): what a real server
cannot be made to show, such as how many events the app pulls, and which extension it uses."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikard import (
    FileResponse,
    PlainTextResponse,
    Request,
    Spikard,
    WebSocket,
    WebSocketConfig,
)
from spikard.asgi.hosted.scope import route_path

pytestmark = pytest.mark.anyio

BOUND = 5.0


class Harness:
    """A pretend ASGI server: scripted ``receive`` events, recorded ``send`` events."""

    def __init__(self, events: list[dict[str, Any]], *, endless: dict[str, Any] | None = None):
        self.events = list(events)
        self.endless = endless
        self.received = 0
        self.sent: list[MutableMapping[str, Any]] = []
        self.send_gate: anyio.Event | None = None
        """While set to an unset event, ``send`` of ``websocket.send`` blocks on it."""
        self.left = anyio.Event()

    async def receive(self) -> dict[str, Any]:
        await anyio.lowlevel.checkpoint()
        self.received += 1
        if self.events:
            return self.events.pop(0)
        if self.endless is not None and not self.left.is_set():
            return dict(self.endless)
        await self.left.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] in ("websocket.send", "http.response.body") and self.send_gate:
            await self.send_gate.wait()
        if message["type"] == "http.response.zerocopysend":  # the server sends it now
            file = message["file"]
            file.seek(message["offset"])
            message = {**message, "data": file.read(message["count"])}
        self.sent.append(message)
        if message["type"] == "websocket.close":
            self.left.set()  # as a server does once the close handshake is over

    def types(self) -> list[str]:
        return [message["type"] for message in self.sent]


def ws_scope(path: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"test")],
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
        **extra,
    }


def http_scope(path: str, method: str = "GET", **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"test")],
        **extra,
    }


async def test_incoming_messages_are_pulled_only_as_the_queue_has_room() -> None:
    app = Spikard(websocket=WebSocketConfig(max_queue=3))
    reads = anyio.Event()
    taken: list[str] = []

    @app.websocket("/slow")
    async def slow(socket: WebSocket) -> None:
        await socket.accept()
        await reads.wait()
        taken.append((await socket.receive()).as_text() or "")

    harness = Harness(
        [{"type": "websocket.connect"}],
        endless={"type": "websocket.receive", "text": "m"},
    )
    async with app.lifespan_context(), anyio.create_task_group() as task_group:
        task_group.start_soon(app, ws_scope("/slow"), harness.receive, harness.send)
        with anyio.fail_after(BOUND):
            while harness.received < 4:
                await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        assert harness.received == 4  # websocket.connect, then max_queue messages
        reads.set()
        with anyio.fail_after(BOUND):
            while harness.received < 5:
                await anyio.sleep(0.01)
        await anyio.sleep(0.1)
        assert harness.received == 5  # one read made room for one more
        assert taken == ["m"]
    assert harness.sent[-1]["type"] == "websocket.close"


async def test_the_next_message_is_produced_once_send_returned() -> None:
    app = Spikard()
    produced: list[int] = []

    @app.websocket("/producer")
    async def producer(socket: WebSocket) -> AsyncIterator[str]:
        for n in range(100):
            produced.append(n)
            yield str(n)

    harness = Harness([{"type": "websocket.connect"}])
    harness.send_gate = anyio.Event()
    async with app.lifespan_context(), anyio.create_task_group() as task_group:
        task_group.start_soon(app, ws_scope("/producer"), harness.receive, harness.send)
        await anyio.sleep(0.2)
        assert produced == [0]  # blocked in the server's send: nothing more pulled
        harness.send_gate.set()
    assert produced == list(range(100))
    assert [m.get("text") for m in harness.sent if m["type"] == "websocket.send"] == [
        str(n) for n in range(100)
    ]


async def test_a_send_that_never_returns_ends_the_session() -> None:
    app = Spikard(websocket=WebSocketConfig(write_timeout=0.3, close_timeout=0.3))
    ended: list[int | None] = []

    @app.websocket("/stuck")
    async def stuck(socket: WebSocket) -> AsyncIterator[str]:
        try:
            while True:
                yield "data"
        finally:
            ended.append(socket.close_code)

    harness = Harness([{"type": "websocket.connect"}])
    harness.send_gate = anyio.Event()  # never set
    async with app.lifespan_context():
        with anyio.fail_after(BOUND):
            await app(ws_scope("/stuck"), harness.receive, harness.send)
    assert ended == [1006]


async def test_no_ping_under_asgi() -> None:
    app = Spikard()
    errors: list[str] = []

    @app.websocket("/ping")
    async def ping(socket: WebSocket) -> None:
        await socket.accept()
        try:
            await socket.ping()
        except NotImplementedError as exc:
            errors.append(str(exc))

    harness = Harness([{"type": "websocket.connect"}])
    async with app.lifespan_context():
        with anyio.fail_after(BOUND):
            await app(ws_scope("/ping"), harness.receive, harness.send)
    assert errors
    assert "keepalive" in errors[0]


async def test_a_handshake_left_unanswered_is_refused_after_accept_timeout() -> None:
    app = Spikard(websocket=WebSocketConfig(accept_timeout=0.3))

    @app.websocket("/undecided")
    async def undecided(socket: WebSocket) -> None:
        await anyio.sleep(30)  # neither accepts nor refuses

    harness = Harness([{"type": "websocket.connect"}])
    async with app.lifespan_context():
        with anyio.fail_after(BOUND):
            await app(ws_scope("/undecided"), harness.receive, harness.send)
    assert harness.sent[0]["type"] == "websocket.http.response.start"
    assert harness.sent[0]["status"] == 500


async def test_handshake_middleware_adds_headers_and_refuses() -> None:
    app = Spikard()

    @app.middleware
    async def gatekeeper(request: Request, call_next: Any) -> Any:
        if request.query_params.get("let") != "in":
            return PlainTextResponse("keep out", 403)
        response = await call_next(request)
        response.headers["x-mw"] = "seen"
        return response

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> AsyncIterator[str]:
        yield "hi"

    allowed = Harness([{"type": "websocket.connect"}])
    refused = Harness([{"type": "websocket.connect"}])
    async with app.lifespan_context():
        with anyio.fail_after(BOUND):
            await app(ws_scope("/ws", query_string=b"let=in"), allowed.receive, allowed.send)
            await app(ws_scope("/ws"), refused.receive, refused.send)
    accept = allowed.sent[0]
    assert accept["type"] == "websocket.accept"
    assert (b"x-mw", b"seen") in accept["headers"]
    assert [m.get("text") for m in allowed.sent if m["type"] == "websocket.send"] == ["hi"]
    assert refused.sent[0]["type"] == "websocket.http.response.start"
    assert refused.sent[0]["status"] == 403
    assert refused.sent[1]["body"] == b"keep out"


async def test_origin_check_applies(tmp_path: Path) -> None:
    app = Spikard(websocket=WebSocketConfig(allowed_origins=("https://good.example",)))

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> AsyncIterator[str]:
        yield "hi"

    harness = Harness([{"type": "websocket.connect"}])
    scope = ws_scope("/ws", headers=[(b"origin", b"https://evil.example")])
    async with app.lifespan_context():
        with anyio.fail_after(BOUND):
            await app(scope, harness.receive, harness.send)
    assert harness.sent[0]["type"] == "websocket.http.response.start"
    assert harness.sent[0]["status"] == 403


@pytest.mark.parametrize("offered", ["pathsend", "zerocopysend", "none"])
async def test_file_responses_use_the_extension_offered(offered: str, tmp_path: Path) -> None:
    data = bytes(range(256)) * 400
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    app = Spikard()

    @app.get("/file")
    async def file() -> FileResponse:
        return FileResponse(path, chunk_size=16384)

    extensions: dict[str, Any] = {} if offered == "none" else {f"http.response.{offered}": {}}
    harness = Harness([{"type": "http.request", "body": b"", "more_body": False}])
    async with app.lifespan_context():
        with anyio.fail_after(BOUND):
            await app(http_scope("/file", extensions=extensions), harness.receive, harness.send)
    start = harness.sent[0]
    assert start["type"] == "http.response.start"
    assert (b"content-length", str(len(data)).encode()) in start["headers"]
    if offered == "pathsend":
        assert harness.sent[1] == {"type": "http.response.pathsend", "path": str(path)}
        return
    body = b""
    for message in harness.sent[1:]:
        if message["type"] == "http.response.zerocopysend":
            body += message["data"]
        else:
            assert message["type"] == "http.response.body"
            body += message["body"]
    assert body == data
    kinds = set(harness.types()[1:])
    expected = (
        {"http.response.zerocopysend", "http.response.body"}
        if offered != "none"
        else {"http.response.body"}
    )
    assert kinds == expected
    assert harness.sent[-1] == {"type": "http.response.body", "body": b""}


async def test_a_body_that_raises_after_the_start_leaves_the_response_incomplete() -> None:
    app = Spikard()

    @app.get("/broken")
    async def broken() -> AsyncIterator[str]:
        yield "first"
        raise RuntimeError("mid-body")

    harness = Harness([{"type": "http.request", "body": b"", "more_body": False}])
    async with app.lifespan_context():
        with anyio.fail_after(BOUND):
            await app(http_scope("/broken"), harness.receive, harness.send)
    assert harness.types() == ["http.response.start", "http.response.body"]
    assert harness.sent[1] == {"type": "http.response.body", "body": b"first", "more_body": True}


async def test_request_body_over_events_with_more_body() -> None:
    app = Spikard()

    @app.post("/echo")
    async def echo_body(request: Request) -> bytes:
        return await request.body()

    parts = [b"ab", b"", b"cd", b"e"]
    harness = Harness(
        [
            {"type": "http.request", "body": part, "more_body": n < len(parts) - 1}
            for n, part in enumerate(parts)
        ]
    )
    scope = http_scope("/echo", "POST", headers=[(b"transfer-encoding", b"chunked")])
    async with app.lifespan_context():
        with anyio.fail_after(BOUND):
            await app(scope, harness.receive, harness.send)
    assert harness.sent[0]["status"] == 200
    assert harness.sent[1]["body"] == b"abcde"
    assert harness.received == len(parts)


async def test_an_unknown_scope_type_is_refused() -> None:
    app = Spikard()
    harness = Harness([])
    with pytest.raises(ValueError, match="not 'webtransport'"):
        await app({"type": "webtransport"}, harness.receive, harness.send)


segment = st.text(st.characters(blacklist_characters="/", min_codepoint=33), min_size=1)


@given(st.lists(segment, max_size=3), st.lists(segment, max_size=3), st.booleans())
def test_route_path_strips_root_path(root: list[str], rest: list[str], slash: bool) -> None:
    root_path = "".join(f"/{part}" for part in root)
    inner = "".join(f"/{part}" for part in rest) + ("/" if slash else "")
    full = root_path + inner
    expected = inner if inner else "/"
    assert route_path({"path": full or "/", "root_path": root_path}) == expected
    # A server that already stripped it (path without the prefix) is used as it is,
    # unless the rest happens to start with the same prefix.
    if not inner.startswith(root_path + "/") and inner != root_path:
        assert route_path({"path": inner or "/", "root_path": root_path}) == (inner or "/")


def test_route_path_needs_a_segment_boundary() -> None:
    assert route_path({"path": "/rtx/hello", "root_path": "/rt"}) == "/rtx/hello"
    assert route_path({"path": "/rt", "root_path": "/rt/"}) == "/"


body_app = Spikard()


@body_app.post("/size", max_body_size=3000)
async def body_size(request: Request) -> dict[str, int]:
    return {"size": len(await request.body())}


@given(
    st.lists(st.binary(max_size=800), max_size=8),
    st.sampled_from(["chunked", "length", "wrong-length"]),
)
def test_request_bodies_in_any_events(parts: list[bytes], framing: str) -> None:
    """Any split of a body into ``http.request`` events reads back whole (413 above the
    route's limit), and exactly as many events are pulled as the body has."""
    body = b"".join(parts)
    events = [{"type": "http.request", "body": part, "more_body": True} for part in parts] + [
        {"type": "http.request", "body": b"", "more_body": False}
    ]
    if framing == "chunked":
        headers = [(b"transfer-encoding", b"chunked")]
    else:
        announced = len(body) + (5000 if framing == "wrong-length" else 0)
        headers = [(b"content-length", str(announced).encode())]
    harness = Harness(events)

    async def run() -> None:
        async with body_app.lifespan_context():
            with anyio.fail_after(BOUND):
                await body_app(
                    http_scope("/size", "POST", headers=headers), harness.receive, harness.send
                )

    anyio.run(run)
    status = harness.sent[0]["status"]
    if framing == "wrong-length":  # announced over the limit: refused before a read
        assert status == 413
        assert harness.received == 0
    elif len(body) > 3000:
        assert status == 413
    else:
        assert status == 200
        assert harness.sent[1]["body"] == f'{{"size":{len(body)}}}'.encode()
        assert harness.received == (len(events) if body or framing == "chunked" else 0)


async def test_an_http2_body_without_content_length_is_read() -> None:
    harness = Harness(
        [
            {"type": "http.request", "body": b"x" * 100, "more_body": True},
            {"type": "http.request", "body": b"y" * 20, "more_body": False},
        ]
    )
    scope = http_scope("/size", "POST", http_version="2")
    async with body_app.lifespan_context():
        with anyio.fail_after(BOUND):
            await body_app(scope, harness.receive, harness.send)
    assert harness.sent[1]["body"] == b'{"size":120}'
