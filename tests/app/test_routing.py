"""Path templates (``PathPattern``), convertors, and how the app picks a route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from spikard import Request, RoutingError, Spikard, WebSocket
from spikard.app.routing import CONVERTORS, PathPattern

from ..helpers import handshake_refusal, ws_connect

# ---- PathPattern ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("/", "/", {}),
        ("/", "/x", None),
        ("/static", "/static", {}),
        ("/static", "/static/", None),
        ("/static", "/staticx", None),
        ("/rooms/{room}", "/rooms/lobby", {"room": "lobby"}),
        ("/rooms/{room}", "/rooms/", None),
        ("/rooms/{room}", "/rooms/a/b", None),
        ("/rooms/{room:str}", "/rooms/a b", {"room": "a b"}),
        ("/items/{id:int}", "/items/42", {"id": 42}),
        ("/items/{id:int}", "/items/-7", {"id": -7}),
        ("/items/{id:int}", "/items/4.2", None),
        ("/items/{id:int}", "/items/x", None),
        ("/items/{id:int}", "/items/", None),
        ("/price/{p:float}", "/price/4.25", {"p": 4.25}),
        ("/price/{p:float}", "/price/3", {"p": 3.0}),
        ("/price/{p:float}", "/price/.5", None),
        ("/files/{rest:path}", "/files/a/b/c.txt", {"rest": "a/b/c.txt"}),
        ("/files/{rest:path}", "/files/", {"rest": ""}),
        ("/files/{rest:path}", "/file", None),
        ("/a/{x}/b/{y:int}", "/a/one/b/2", {"x": "one", "y": 2}),
        ("/a/{x}-{y}", "/a/1-2", {"x": "1", "y": "2"}),
        ("/v1.0/{x}", "/v1.0/z", {"x": "z"}),
        ("/v1.0/{x}", "/v1x0/z", None),  # the dot is literal, not a regex wildcard
        ("/a+b/{x}", "/a+b/z", {"x": "z"}),
        ("/{_name1}", "/q", {"_name1": "q"}),
    ],
)
def test_match(template: str, path: str, expected: dict[str, Any] | None) -> None:
    assert PathPattern(template).match(path) == expected


def test_converted_types() -> None:
    params = PathPattern("/{a:int}/{b:float}/{c}/{d:path}").match("/1/2.5/x/y/z")
    assert params == {"a": 1, "b": 2.5, "c": "x", "d": "y/z"}
    assert params is not None
    assert [type(v) for v in params.values()] == [int, float, str, str]


def test_param_names_in_order() -> None:
    assert PathPattern("/{b}/{a:int}/{c:path}").param_names == ("b", "a", "c")
    assert PathPattern("/plain").param_names == ()


def test_convertor_table() -> None:
    assert set(CONVERTORS) == {"str", "int", "float", "path"}


@pytest.mark.parametrize(
    "template",
    [
        "",
        "rooms/{room}",
        "/{x:unknown}",
        "/{x}/{x}",
        "/{x}/{x:int}",
        "/a/{x",
        "/a/x}",
        "/a/{}",
        "/a/{1x}",
        "/a/{x:}",
    ],
)
def test_bad_templates(template: str) -> None:
    with pytest.raises(RoutingError):
        PathPattern(template)


@pytest.mark.parametrize("template", ["/{bad-name}/{x}", "/a/{/{x}", "/}/{x}"])
def test_malformed_placeholder_before_a_valid_one(template: str) -> None:
    with pytest.raises(RoutingError):
        PathPattern(template)


# ---- route selection in the app ------------------------------------------------------------

app = Spikard()


@app.get("/users/me")
async def me() -> str:
    return "me"


@app.get("/users/{name}")
async def user(name: str) -> str:
    return f"user {name}"


@app.get("/both")
async def both_http(request: Request) -> str:
    return "http"


@app.websocket("/both")
async def both_ws(socket: WebSocket) -> AsyncIterator[str]:
    yield "websocket"


@app.get("/http-only")
async def http_only() -> str:
    return "plain"


@app.websocket("/ws/{kind}/{id:int}")
async def ws_params(socket: WebSocket) -> AsyncIterator[str]:
    yield repr(socket.path_params)


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        with anyio.fail_after(5):
            while True:
                try:
                    data += await stream.receive()
                except anyio.EndOfStream:
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_first_registered_route_wins() -> None:
    async with app.test_server() as server:
        assert await http_get(server.port, "/users/me") == (200, b"me")
        assert await http_get(server.port, "/users/ann") == (200, b"user ann")


async def test_http_and_websocket_on_the_same_path() -> None:
    async with app.test_server() as server:
        assert await http_get(server.port, "/both") == (200, b"http")
        async with ws_connect(server.ws_url("/both")) as ws:
            with anyio.fail_after(5):
                assert await ws.recv() == "websocket"


async def test_websocket_path_params() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/ws/cat/9")) as ws:
        with anyio.fail_after(5):
            assert await ws.recv() == "{'kind': 'cat', 'id': 9}"


async def test_upgrade_to_unrouted_path_is_404() -> None:
    async with app.test_server() as server:
        info = await handshake_refusal(server.ws_url("/ws/cat/not-an-int"))
    assert info.status_code == 404


async def test_upgrade_to_http_only_route_is_refused() -> None:
    async with app.test_server() as server:
        info = await handshake_refusal(server.ws_url("/http-only"))
    assert info.status_code != 101


def test_registration_errors() -> None:
    local = Spikard()
    with pytest.raises(RoutingError):
        local.add_route("bad", lambda: "x")
    with pytest.raises(RoutingError):
        local.add_websocket_route("/{x:nope}", lambda socket: None)
    local.add_route("/same", lambda: "x")
    with pytest.raises(RoutingError):
        local.add_route("/same", lambda: "y")
