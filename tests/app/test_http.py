"""HTTP routes over real loopback sockets, with a small h11-based HTTP/1.1 client.

Return-value conversion, path/query/header/cookie access, bodies, errors (404, 405, 418, 500),
HEAD, keep-alive, ``Connection: close`` and ``Expect: 100-continue``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import h11
import pytest

from spikard import (
    HTMLResponse,
    HTTPException,
    JSONResponse,
    PlainTextResponse,
    Request,
    Response,
    RoutingError,
    Spikard,
    WebSocket,
)

from ..helpers import read_all

# Marked at collection time: the conftest adds the anyio mark only after collection, which
# (with anyio's plugin) drops the parameters of a parametrized async test.
pytestmark = pytest.mark.anyio

app = Spikard()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.body)


class HTTPClient:
    """One HTTP/1.1 connection driven by h11 on the client side."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def _event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self.stream.receive()
                except anyio.EndOfStream:
                    data = b""
                self.h11.receive_data(data)
                continue
            return event

    async def send_head(
        self, method: str, target: str, headers: Sequence[tuple[str, str]] = (), body_size: int = 0
    ) -> None:
        fields = [("host", "127.0.0.1"), *headers]
        if body_size and not any(k.lower() == "content-length" for k, _ in fields):
            fields.append(("content-length", str(body_size)))
        await self.stream.send(
            self.h11.send(h11.Request(method=method, target=target, headers=fields))
        )

    async def send_body(self, body: bytes) -> None:
        data = self.h11.send(h11.Data(data=body)) if body else b""
        await self.stream.send(data + self.h11.send(h11.EndOfMessage()))

    async def read_response(self) -> Reply:
        event = await self._event()
        while isinstance(event, h11.InformationalResponse):
            event = await self._event()
        assert isinstance(event, h11.Response), event
        raw = [(k.decode(), v.decode()) for k, v in event.headers]
        reply = Reply(event.status_code, dict(raw), raw_headers=raw)
        while True:
            part = await self._event()
            if isinstance(part, h11.Data):
                reply.body += part.data
            elif isinstance(part, h11.EndOfMessage):
                return reply

    async def request(
        self,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Reply:
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        with anyio.fail_after(5):
            await self.send_head(method, target, headers, len(body))
            await self.send_body(body)
            return await self.read_response()


async def request(
    port: int,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Reply:
    """One request on a fresh connection."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        return await HTTPClient(stream).request(method, target, headers, body)


# ---- the app -------------------------------------------------------------------------------


@app.get("/text")
async def text() -> str:
    return "héllo"


@app.get("/bytes")
def raw_bytes() -> bytes:
    return b"\x00\x01\x02"


@app.get("/dict")
async def as_dict() -> dict[str, Any]:
    return {"a": 1, "ü": [True, None]}


@app.get("/list")
async def as_list() -> list[int]:
    return [1, 2, 3]


@app.get("/none")
async def nothing() -> None:
    return None


@app.get("/response")
async def full_response() -> Response:
    return Response(b"<x/>", 201, {"X-Extra": "1"}, media_type="application/xml")


@app.get("/html")
async def html() -> HTMLResponse:
    return HTMLResponse("<h1>hi</h1>")


@app.get("/json")
async def json_response() -> JSONResponse:
    return JSONResponse({"ok": True}, status_code=202)


@app.get("/items/{id:int}")
async def item(id: int) -> dict[str, Any]:
    return {"id": id, "type": type(id).__name__}


@app.get("/files/{rest:path}")
async def files(request: Request, rest: str) -> str:
    return f"{rest}|{request.path_params['rest']}"


@app.get("/users/{name}/posts/{post:int}")
def user_post(name: str, post: int) -> list[Any]:
    return [name, post]


@app.get("/query")
async def query(request: Request) -> dict[str, Any]:
    params = request.query_params
    return {
        "a": params.getlist("a"),
        "first_a": params.get("a"),
        "b": params.get("b"),
        "missing": params.get("missing"),
        "string": request.query_string,
    }


@app.get("/headers")
async def headers(request: Request) -> dict[str, Any]:
    h = request.headers
    return {
        "lower": h.get("x-thing"),
        "upper": h.get("X-THING"),
        "item": h["X-Thing"],
        "contains": "X-THING" in h,
        "multi": h.getlist("x-multi"),
    }


@app.get("/cookies")
async def cookies(request: Request) -> dict[str, str]:
    return dict(request.cookies)


@app.get("/client")
async def client(request: Request) -> dict[str, Any]:
    assert request.client is not None
    server = request.server
    return {
        "host": request.client.host,
        "port": request.client.port,
        "url": request.url,
        "server": list(server) if server is not None else None,
    }


@app.post("/echo")
async def echo_body(request: Request) -> Response:
    body = await request.body()
    return Response(body, media_type=request.headers.get("content-type"))


@app.post("/json")
async def echo_json(request: Request) -> dict[str, Any]:
    data = await request.json()
    return {"got": data, "text": await request.text()}


@app.get("/teapot")
async def teapot() -> str:
    raise HTTPException(418, "I'm a teapot, short and stout", {"x-tea": "earl grey"})


@app.get("/forbidden")
async def forbidden() -> str:
    raise HTTPException(403)


@app.get("/boom")
async def boom() -> str:
    raise RuntimeError("kaboom")


@app.get("/bad-return")
async def bad_return() -> int:
    return 42


@app.route("/things", methods=["GET", "POST"])
async def things(request: Request) -> str:
    return f"things via {request.method}"


@app.delete("/things")
async def delete_things() -> str:
    return "deleted"


@app.put("/only-put")
async def only_put() -> str:
    return "put"


@app.patch("/only-put")
async def only_patch() -> str:
    return "patched"


@app.websocket("/ws")
async def ws(socket: WebSocket) -> None:
    await socket.close()  # pragma: no cover


# ---- return values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "content_type", "body"),
    [
        ("/text", 200, "text/plain; charset=utf-8", "héllo".encode()),
        ("/bytes", 200, "application/octet-stream", b"\x00\x01\x02"),
        ("/dict", 200, "application/json", '{"a":1,"ü":[true,null]}'.encode()),
        ("/list", 200, "application/json", b"[1,2,3]"),
        ("/response", 201, "application/xml", b"<x/>"),
        ("/html", 200, "text/html; charset=utf-8", b"<h1>hi</h1>"),
        ("/json", 202, "application/json", b'{"ok":true}'),
    ],
)
async def test_return_values(path: str, status: int, content_type: str, body: bytes) -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", path)
    assert reply.status == status
    assert reply.headers["content-type"] == content_type
    assert reply.headers["content-length"] == str(len(body))
    assert reply.body == body


async def test_custom_response_headers() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/response")
    assert reply.headers["x-extra"] == "1"


async def test_none_is_204_without_body() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/none")
    assert reply.status == 204
    assert reply.body == b""


async def test_204_has_no_content_length() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/none")
    assert "content-length" not in reply.headers


async def test_unsupported_return_type_is_500() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/bad-return")
    assert reply.status == 500


# ---- request data --------------------------------------------------------------------------


async def test_int_path_param() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/items/42")
        assert reply.json() == {"id": 42, "type": "int"}
        reply = await request(server.port, "GET", "/items/-3")
        assert reply.json() == {"id": -3, "type": "int"}
        assert (await request(server.port, "GET", "/items/abc")).status == 404
        assert (await request(server.port, "GET", "/items/4.5")).status == 404


async def test_path_param_spanning_segments() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/files/a/b/c.txt")
        assert reply.body == b"a/b/c.txt|a/b/c.txt"
        reply = await request(server.port, "GET", "/files/with%20space")
        assert reply.body == b"with space|with space"


async def test_several_path_params_as_keywords() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/users/ann/posts/7")
    assert reply.json() == ["ann", 7]


async def test_query_params_multi_value() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/query?a=1&b=two%20words&a=2&a=")
    assert reply.json() == {
        "a": ["1", "2", ""],
        "first_a": "1",
        "b": "two words",
        "missing": None,
        "string": "a=1&b=two%20words&a=2&a=",
    }


async def test_headers_case_insensitive_and_multi_value() -> None:
    async with app.test_server() as server:
        reply = await request(
            server.port,
            "GET",
            "/headers",
            [("X-Thing", "v"), ("X-Multi", "1"), ("x-multi", "2")],
        )
    assert reply.json() == {
        "lower": "v",
        "upper": "v",
        "item": "v",
        "contains": True,
        "multi": ["1", "2"],
    }


async def test_cookies() -> None:
    async with app.test_server() as server:
        reply = await request(
            server.port, "GET", "/cookies", [("Cookie", "a=1; b=two"), ("Cookie", "c=3")]
        )
        assert reply.json() == {"a": "1", "b": "two", "c": "3"}
        reply = await request(server.port, "GET", "/cookies")
        assert reply.json() == {}


async def test_request_client_is_the_peer_and_server_the_local_address() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        local = stream.extra(anyio.abc.SocketAttribute.local_address)
        reply = await HTTPClient(stream).request("GET", "/client?x=1")
    assert reply.json() == {
        "host": "127.0.0.1",
        "port": local[1],
        "url": "http://127.0.0.1/client?x=1",
        "server": ["127.0.0.1", server.port],
    }


async def test_post_body_and_json() -> None:
    async with app.test_server() as server:
        reply = await request(
            server.port, "POST", "/echo", [("content-type", "application/x-thing")], b"\x00abc"
        )
        assert (reply.status, reply.body) == (200, b"\x00abc")
        assert reply.headers["content-type"] == "application/x-thing"
        payload = json.dumps({"k": [1, "ü"]}).encode()
        reply = await request(server.port, "POST", "/json", body=payload)
        assert reply.json() == {"got": {"k": [1, "ü"]}, "text": payload.decode()}
        reply = await request(server.port, "POST", "/json", body=b"{not json")
        assert reply.status == 400  # the client's mistake, not the server's
        assert reply.body.startswith(b"Invalid JSON body: ")
        reply = await request(server.port, "POST", "/json", body=b'"\xff"')
        assert reply.status == 400  # not UTF-8


async def test_chunked_request_body() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        client = HTTPClient(stream)
        with anyio.fail_after(5):
            await client.send_head("POST", "/echo", [("transfer-encoding", "chunked")])
            await stream.send(client.h11.send(h11.Data(data=b"part1-")))
            await stream.send(client.h11.send(h11.Data(data=b"part2")))
            await stream.send(client.h11.send(h11.EndOfMessage()))
            reply = await client.read_response()
    assert reply.body == b"part1-part2"


# ---- errors --------------------------------------------------------------------------------


async def test_http_exception() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/teapot")
        assert reply.status == 418
        assert reply.body == b"I'm a teapot, short and stout"
        assert reply.headers["x-tea"] == "earl grey"
        reply = await request(server.port, "GET", "/forbidden")
        assert (reply.status, reply.body) == (403, b"Forbidden")


async def test_handler_exception_is_500_and_connection_survives() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        client = HTTPClient(stream)
        reply = await client.request("GET", "/boom")
        assert reply.status == 500
        assert b"kaboom" not in reply.body  # no details leak to the client
        assert (await client.request("GET", "/text")).status == 200


async def test_not_found() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/nowhere")
    assert (reply.status, reply.body) == (404, b"Not Found")


async def test_method_not_allowed_lists_allowed_methods() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "PUT", "/things")
        assert reply.status == 405
        assert reply.headers["allow"] == "DELETE, GET, HEAD, POST"
        reply = await request(server.port, "GET", "/only-put")
        assert reply.status == 405
        assert reply.headers["allow"] == "PATCH, PUT"
        assert (await request(server.port, "DELETE", "/things")).body == b"deleted"
        assert (await request(server.port, "POST", "/things")).body == b"things via POST"
        assert (await request(server.port, "PATCH", "/only-put")).body == b"patched"


async def test_plain_get_on_websocket_route_is_426() -> None:
    async with app.test_server() as server:
        reply = await request(server.port, "GET", "/ws")
    assert reply.status == 426
    assert reply.headers["upgrade"] == "websocket"


# ---- HEAD, keep-alive, Connection: close, Expect -------------------------------------------


async def test_head_on_get_route_sends_headers_only() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        client = HTTPClient(stream)
        head = await client.request("HEAD", "/text")
        get = await client.request("GET", "/text")  # same connection: no stray body bytes
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == get.headers["content-length"] == "6"
    assert head.headers["content-type"] == get.headers["content-type"]
    assert get.body == "héllo".encode()


async def test_head_with_raw_socket_has_no_body() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(b"HEAD /dict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with anyio.fail_after(5):
            data = await read_all(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length: 24" in head.lower()
    assert body == b""


async def test_keep_alive_two_requests_on_one_connection() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        client = HTTPClient(stream)
        first = await client.request("GET", "/text")
        second = await client.request("GET", "/list")
        third = await client.request("POST", "/echo", body=b"3")
    assert "connection" not in first.headers
    assert (first.body, second.body, third.body) == ("héllo".encode(), b"[1,2,3]", b"3")


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(
            b"GET /list HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /bytes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        with anyio.fail_after(5):
            data = await read_all(stream)
    assert data.count(b"HTTP/1.1 200") == 2
    assert data.index(b"[1,2,3]") < data.index(b"\x00\x01\x02")


async def test_connection_close_is_honoured() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        client = HTTPClient(stream)
        reply = await client.request("GET", "/text", [("Connection", "close")])
        assert reply.headers.get("connection") == "close"
        with anyio.fail_after(5), pytest.raises(anyio.EndOfStream):
            await stream.receive()


async def test_http_10_closes_after_response() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(b"GET /list HTTP/1.0\r\n\r\n")
        with anyio.fail_after(5):
            data = await read_all(stream)
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(b"[1,2,3]")


async def test_expect_100_continue() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        client = HTTPClient(stream)
        with anyio.fail_after(5):
            await client.send_head("POST", "/echo", [("expect", "100-continue")], body_size=5)
            interim = await client._event()
            assert isinstance(interim, h11.InformationalResponse)
            assert interim.status_code == 100
            await client.send_body(b"later")
            reply = await client.read_response()
    assert (reply.status, reply.body) == (200, b"later")


# ---- registration errors -------------------------------------------------------------------


def test_duplicate_http_route_is_a_routing_error() -> None:
    local = Spikard()
    local.add_route("/a", lambda: "x", ["GET", "POST"])
    with pytest.raises(RoutingError):
        local.add_route("/a", lambda: "y", ["post"])
    local.add_route("/a", lambda: "z", ["PUT"])  # another method is fine


def test_duplicate_websocket_route_is_a_routing_error() -> None:
    local = Spikard()

    async def handler(socket: WebSocket) -> None:
        return None  # pragma: no cover

    local.add_websocket_route("/ws", handler)
    with pytest.raises(RoutingError):
        local.add_websocket_route("/ws", handler)


@pytest.mark.parametrize("path", ["no-slash", "/{x:unknown}", "/{x}/{x}", "/a/{x", "/a/x}"])
def test_bad_path_template_is_a_routing_error(path: str) -> None:
    local = Spikard()
    with pytest.raises(RoutingError):
        local.add_route(path, lambda: "x")


def test_plain_text_response_class() -> None:
    response = PlainTextResponse("x", headers={"Content-Length": "99", "X-A": "b"})
    assert dict(response.raw_headers()) == {
        b"content-type": b"text/plain; charset=utf-8",
        b"content-length": b"1",
        b"x-a": b"b",
    }
