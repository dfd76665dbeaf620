"""A real Starlette app served over real sockets: routing, middleware, files, SSE, WebSockets."""

from __future__ import annotations

import gzip
import json
import threading
import time
import uuid

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from .app_starlette import FILE_BODY
from .registry import wait_for
from .servers import Target
from .wire import Reader, request


def key() -> str:
    return uuid.uuid4().hex


def test_plain_route(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/")
    assert (response.status_code, response.text) == (200, "hello starlette")
    assert response.headers["content-type"].startswith("text/plain")


def test_path_params_and_repeated_query(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/items/42", params=[("q", "a"), ("q", "b c")])
    assert response.json() == {"id": 42, "q": ["a", "b c"]}


def test_path_converter_rejects(starlette: Target) -> None:
    with starlette.http() as client:
        assert client.get("/items/not-a-number").status_code == 404


def test_method_not_allowed(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/json")
    assert response.status_code == 405
    assert "POST" in response.headers["allow"]


def test_json_body(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.post("/json", json={"a": [1, 2, {"b": None}]})
    assert response.status_code == 201
    assert response.json() == {"got": {"a": [1, 2, {"b": None}]}}


def test_urlencoded_form(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.post("/form", data={"name": "ada", "lang": "py thon"})
    assert response.json() == {"name": "ada", "lang": "py thon"}


def test_multipart_upload(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.post("/upload", files={"file": ("a.bin", b"\x00" * 300000)})
    assert response.json() == {"name": "a.bin", "size": 300000}


def test_request_stream(starlette: Target) -> None:
    def parts() -> object:
        for _ in range(10):
            yield b"s" * 10000

    with starlette.http() as client:
        response = client.post("/streamed-request", content=parts())  # type: ignore[arg-type]
    assert response.json() == {"total": 100000}


def test_streaming_response(starlette: Target) -> None:
    with starlette.http() as client, client.stream("GET", "/stream?n=20") as response:
        lines = list(response.iter_lines())
    assert lines == [str(n) for n in range(20)]


def test_streaming_response_stops_when_the_client_leaves(starlette: Target) -> None:
    name = key()
    with starlette.raw() as sock:
        sock.sendall(request("GET", f"/stream-forever?key={name}"))
        Reader(sock).until(b"\r\n\r\n")
    with starlette.http() as client:
        assert wait_for(client, name, timeout=4) == ["generator closed"]


def test_file_response(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/file", headers={"accept-encoding": "identity"})
    assert response.content == FILE_BODY
    assert response.headers["content-length"] == str(len(FILE_BODY))
    assert "etag" in response.headers
    assert "last-modified" in response.headers
    assert "data.bin" in response.headers["content-disposition"]


def test_file_response_head(starlette: Target) -> None:
    with starlette.raw() as sock:
        sock.sendall(request("HEAD", "/file") + request("GET", "/"))
        reader = Reader(sock)
        head = reader.response(head_request=True)
        after = reader.response()
    assert head.header(b"content-length") == str(len(FILE_BODY)).encode()
    assert after.body == b"hello starlette"


def test_file_response_range(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/file", headers={"range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.content == FILE_BODY[10:20]


def test_file_response_gzip_is_chunked(starlette: Target) -> None:
    with starlette.raw() as sock:
        sock.sendall(request("GET", "/file", headers=[("Accept-Encoding", "gzip")]))
        response = Reader(sock).response()
    assert response.header(b"content-encoding") == b"gzip"
    assert gzip.decompress(response.body) == FILE_BODY


def test_static_files_and_304(starlette: Target) -> None:
    with starlette.http() as client:
        first = client.get("/static/data.bin", headers={"accept-encoding": "identity"})
        assert first.content == FILE_BODY
        again = client.get("/static/data.bin", headers={"if-none-match": first.headers["etag"]})
        assert client.get("/static/missing.bin").status_code == 404
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]


def test_304_has_no_body_on_the_wire(starlette: Target) -> None:
    with starlette.http() as client:
        etag = client.get("/static/data.bin").headers["etag"]
    with starlette.raw() as sock:
        conditional = request("GET", "/static/data.bin", headers=[("If-None-Match", etag)])
        sock.sendall(conditional + request("GET", "/"))
        reader = Reader(sock)
        assert reader.response().status == 304
        assert reader.response().body == b"hello starlette"


def test_cors_preflight(starlette: Target) -> None:
    headers = {
        "origin": "https://app.example",
        "access-control-request-method": "PUT",
        "access-control-request-headers": "x-custom",
    }
    with starlette.http() as client:
        response = client.options("/cors/data", headers=headers)
        simple = client.get("/cors/data", headers={"origin": "https://app.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert simple.headers["access-control-allow-origin"] == "https://app.example"


def test_background_task_runs_after_the_response(starlette: Target) -> None:
    name = key()
    with starlette.http() as client:
        started = time.monotonic()
        response = client.get("/background", params={"key": name})
        elapsed = time.monotonic() - started
        assert response.text == "sent"
        assert wait_for(client, name, count=2) == ["handler", "background"]
    assert elapsed < 2


def test_background_task_does_not_hold_up_the_next_request(starlette: Target) -> None:
    name = key()
    with starlette.raw() as sock:
        reader = Reader(sock)
        sock.sendall(request("GET", f"/slow-background?key={name}"))
        assert reader.response().body == b"queued"
        started = time.monotonic()
        sock.sendall(request("GET", "/"))
        assert reader.response().body == b"hello starlette"
        waited = time.monotonic() - started
    assert waited < 0.8
    with starlette.http() as client:
        assert wait_for(client, name, timeout=5) == ["slow background done"]


def test_exception_handler(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/teapot")
    assert (response.status_code, response.json()) == (418, {"error": "teapot"})


def test_unhandled_exception_is_500(starlette: Target) -> None:
    with starlette.http() as client:
        assert client.get("/crash").status_code == 500
    with starlette.http() as client:  # uvicorn closes the connection after an app error
        assert client.get("/").status_code == 200


def test_not_found(starlette: Target) -> None:
    with starlette.http() as client:
        assert client.get("/nowhere").status_code == 404


def test_middlewares_both_kinds(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/")
    assert response.headers["x-asgi-middleware"] == "1"
    assert response.headers["x-base-middleware"] == "1"


def test_gzip_middleware(starlette: Target) -> None:
    with starlette.raw() as sock:
        sock.sendall(request("GET", "/big", headers=[("Accept-Encoding", "gzip")]))
        response = Reader(sock).response()
    assert response.header(b"content-encoding") == b"gzip"
    assert gzip.decompress(response.body) == b"compress me " * 2000


def test_lifespan_state_in_request(starlette: Target) -> None:
    with starlette.http() as client:
        assert client.get("/state").json() == {"db": "connected", "url": "/state"}


def test_mount_sets_root_path(starlette: Target) -> None:
    with starlette.http() as client:
        shown = client.get("/sub/where").json()
    assert shown["root_path"] == "/sub"
    assert shown["path"] == "/sub/where"
    assert shown["url"] == "/sub/where"


def test_redirect(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/redirect")
    assert response.status_code == 307
    assert response.headers["location"] == "/"


def test_concurrent_requests_through_middleware(starlette: Target) -> None:
    errors: list[BaseException] = []

    def get(number: int) -> None:
        try:
            with starlette.http() as client:
                assert client.get(f"/items/{number}").json()["id"] == number
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=get, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors[:3]


# SSE ----------------------------------------------------------------------------------------


def sse_events(text: str) -> list[dict[str, str]]:
    parsed = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        event: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                event.setdefault("comment", line[1:].strip())
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            event[field] = f"{event[field]}\n{value}" if field in event else value
        parsed.append(event)
    return parsed


def test_sse_fields(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/sse")
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    assert events[0] == {"event": "greeting", "id": "1", "data": "hello", "retry": "2500"}
    assert events[1] == {"event": "multi", "id": "2", "data": "line one\nline two"}
    assert events[2] == {"data": "plain"}
    assert events[3] == {"comment": "just a comment"}


def test_sse_is_streamed_not_buffered(starlette: Target) -> None:
    with starlette.raw() as sock:
        sock.sendall(request("GET", "/sse-ping"))
        reader = Reader(sock)
        started = time.monotonic()
        reader.until(b"data: first")
        assert time.monotonic() - started < 1.0  # the first event comes before the sleep ends


@pytest.mark.slow
def test_sse_ping_comments(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/sse-ping")
    events = sse_events(response.text)
    assert events[0] == {"data": "first"}
    assert any(event.get("comment", "").startswith("ping") for event in events)
    assert events[-1] == {"data": "after pings"}


def test_sse_headers(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/sse")
    assert response.headers["cache-control"] == "no-store"
    assert "content-length" not in response.headers


def test_sse_client_disconnect_stops_the_generator(starlette: Target) -> None:
    name = key()
    with starlette.http() as client:
        with client.stream("GET", "/sse-forever", params={"key": name}) as response:
            for line in response.iter_lines():
                if line == "data: 3":
                    break
        assert wait_for(client, name, timeout=4) == ["sse generator closed"]


def test_sse_through_httpx_async(starlette: Target) -> None:
    import anyio

    async def read() -> list[str]:
        async with starlette.async_http() as client, client.stream("GET", "/sse") as response:
            return [line async for line in response.aiter_lines() if line.startswith("data:")]

    assert anyio.run(read) == ["data: hello", "data: line one", "data: line two", "data: plain"]


# WebSocket routes ---------------------------------------------------------------------------


def test_websocket_route_echo_with_subprotocol(starlette: Target) -> None:
    offer = [Subprotocol("graphql-ws")]
    with connect(starlette.ws_url("/ws"), subprotocols=offer, **starlette.ws_options()) as ws:
        assert ws.subprotocol == "graphql-ws"
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo: hi"


def test_websocket_route_disconnect_code(starlette: Target) -> None:
    name = key()
    with connect(starlette.ws_url(f"/ws?key={name}"), **starlette.ws_options()) as ws:
        ws.send("x")
        ws.recv(timeout=5)
        ws.close(4005, "leaving")
    with starlette.http() as client:
        assert wait_for(client, name) == ["disconnect 4005"]


def test_websocket_json_state_and_close_reason(starlette: Target) -> None:
    with connect(starlette.ws_url("/ws-json"), **starlette.ws_options()) as ws:
        ws.send(json.dumps({"n": 1}))
        assert json.loads(ws.recv(timeout=5)) == {"received": {"n": 1}, "db": "connected"}
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
        assert ws.protocol.close_rcvd is not None
        assert (ws.protocol.close_rcvd.code, ws.protocol.close_rcvd.reason) == (4002, "json done")


def test_websocket_bytes(starlette: Target) -> None:
    with connect(starlette.ws_url("/ws-bytes"), **starlette.ws_options()) as ws:
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=5) == b"\x03\x02\x01"


def test_websocket_iter_text(starlette: Target) -> None:
    with connect(starlette.ws_url("/ws-iter"), **starlette.ws_options()) as ws:
        for word in ("abc", "spikard"):
            ws.send(word)
            assert ws.recv(timeout=5) == word[::-1]
        ws.send("stop")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)


def test_websocket_refused_before_accept_is_403(starlette: Target) -> None:
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(starlette.ws_url("/ws-refuse"), **starlette.ws_options()),
    ):
        pass  # pragma: no cover
    assert refused.value.response.status_code == 403


def test_websocket_denial_response(starlette: Target) -> None:
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(starlette.ws_url("/ws-deny"), **starlette.ws_options()),
    ):
        pass  # pragma: no cover
    assert refused.value.response.status_code == 401
    assert refused.value.response.body == b"go away"


def test_websocket_unknown_route_is_refused(starlette: Target) -> None:
    with (
        pytest.raises(InvalidStatus) as refused,
        connect(starlette.ws_url("/nope"), **starlette.ws_options()),
    ):
        pass  # pragma: no cover
    assert refused.value.response.status_code == 403


def test_plain_get_on_a_websocket_route(starlette: Target) -> None:
    with starlette.http() as client:
        assert client.get("/ws").status_code in (400, 404, 426)


def test_httpx_sees_the_same_as_raw(starlette: Target) -> None:
    with starlette.http() as client:
        response = client.get("/")
    assert isinstance(response, httpx.Response)
    assert response.http_version == "HTTP/1.1"
