"""CORSMiddleware: preflights, simple requests, credentials, and WebSocket handshakes untouched."""

from __future__ import annotations

import http.client
from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import CORSMiddleware, Request, Spikard, WebSocket, WebSocketConfig
from tests.helpers import handshake_refusal, ws_connect

APP_ORIGIN = "https://app.example.com"


def make_app(**options: object) -> tuple[Spikard, list[str]]:
    app = Spikard(websocket=WebSocketConfig(allowed_origins=("https://chat.example.com",)))
    calls: list[str] = []
    app.middleware(CORSMiddleware(**options))  # type: ignore[arg-type]

    @app.route("/items", methods=("GET", "POST", "DELETE"))
    async def items(request: Request) -> str:
        calls.append(request.method)
        return "items"

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> AsyncIterator[str]:
        yield "hello"

    return app, calls


def fetch(
    port: int, method: str, path: str, headers: dict[str, str]
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.msg, response.read()
    finally:
        connection.close()


async def send(
    port: int, method: str, path: str, **headers: str
) -> tuple[int, http.client.HTTPMessage, bytes]:
    named = {name.replace("_", "-"): value for name, value in headers.items()}
    return await anyio.to_thread.run_sync(fetch, port, method, path, named)


async def test_simple_request_from_an_allowed_origin_is_marked() -> None:
    app, calls = make_app(allow_origins=[APP_ORIGIN], expose_headers=["x-total"])
    async with app.test_server() as server:
        status, headers, body = await send(server.port, "GET", "/items", Origin=APP_ORIGIN)
    assert (status, body) == (200, b"items")
    assert headers["access-control-allow-origin"] == APP_ORIGIN
    assert headers["access-control-expose-headers"] == "x-total"
    assert headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in headers
    assert calls == ["GET"]


async def test_other_origins_get_no_cors_headers_but_still_vary() -> None:
    app, _ = make_app(allow_origins=[APP_ORIGIN])
    async with app.test_server() as server:
        status, headers, _ = await send(server.port, "GET", "/items", Origin="https://evil.example")
        _, without_origin, _ = await send(server.port, "GET", "/items")
    assert status == 200  # the browser, not the server, withholds the response
    assert "access-control-allow-origin" not in headers
    assert headers["vary"] == "Origin"
    assert without_origin["vary"] == "Origin"
    assert "access-control-allow-origin" not in without_origin


async def test_any_origin_without_credentials_is_a_star() -> None:
    app, _ = make_app(allow_origins=["*"])
    async with app.test_server() as server:
        _, headers, _ = await send(server.port, "GET", "/items", Origin="https://a.test")
    assert headers["access-control-allow-origin"] == "*"
    assert "vary" not in headers


async def test_with_credentials_the_origin_is_echoed_never_a_star() -> None:
    app, _ = make_app(
        allow_origins=["*"], allow_credentials=True, allow_methods=["*"], allow_headers=["*"]
    )
    async with app.test_server() as server:
        _, headers, _ = await send(server.port, "GET", "/items", Origin="https://a.test")
        _, preflight, _ = await send(
            server.port,
            "OPTIONS",
            "/items",
            Origin="https://a.test",
            Access_Control_Request_Method="DELETE",
            Access_Control_Request_Headers="X-Token",
        )
    assert headers["access-control-allow-origin"] == "https://a.test"
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["vary"] == "Origin"
    assert preflight["access-control-allow-origin"] == "https://a.test"
    assert preflight["access-control-allow-credentials"] == "true"


async def test_a_preflight_is_answered_without_the_route() -> None:
    app, calls = make_app(
        allow_origins=[APP_ORIGIN],
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["X-Token"],
        max_age=86400,
    )
    async with app.test_server() as server:
        status, headers, body = await send(
            server.port,
            "OPTIONS",
            "/items",
            Origin=APP_ORIGIN,
            Access_Control_Request_Method="DELETE",
            Access_Control_Request_Headers="x-token, content-type",
        )
    assert status == 204
    assert body == b""
    assert headers["access-control-allow-origin"] == APP_ORIGIN
    assert headers["access-control-allow-methods"] == "DELETE, GET, POST"
    assert headers["access-control-allow-headers"] == "x-token, content-type"
    assert headers["access-control-max-age"] == "86400"
    assert "Origin" in headers["vary"]
    assert calls == []


@pytest.mark.parametrize(
    ("origin", "method", "request_headers", "refused"),
    [
        ("https://evil.example", "GET", "", "origin"),
        (APP_ORIGIN, "PATCH", "", "method"),
        (APP_ORIGIN, "GET", "x-not-allowed", "headers"),
    ],
)
async def test_a_preflight_outside_the_policy_is_400(
    origin: str, method: str, request_headers: str, refused: str
) -> None:
    app, calls = make_app(allow_origins=[APP_ORIGIN], allow_methods=["GET"], allow_headers=[])
    extra = {"Access_Control_Request_Headers": request_headers} if request_headers else {}
    async with app.test_server() as server:
        status, headers, body = await send(
            server.port,
            "OPTIONS",
            "/items",
            Origin=origin,
            Access_Control_Request_Method=method,
            **extra,
        )
    assert status == 400
    assert body == f"Disallowed CORS {refused}".encode()
    assert "access-control-allow-origin" not in headers
    assert calls == []


async def test_wildcards_for_methods_headers_and_subdomains() -> None:
    app, _ = make_app(
        allow_origins=["https://*.example.com"], allow_methods=["*"], allow_headers=["*"]
    )
    async with app.test_server() as server:
        status, headers, _ = await send(
            server.port,
            "OPTIONS",
            "/items",
            Origin="https://eu.shop.example.com",
            Access_Control_Request_Method="PURGE",
            Access_Control_Request_Headers="x-anything",
        )
        _, apex, _ = await send(server.port, "GET", "/items", Origin="https://example.com")
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://eu.shop.example.com"
    assert headers["access-control-allow-methods"] == "PURGE"
    assert headers["access-control-allow-headers"] == "x-anything"
    assert "access-control-allow-origin" not in apex


async def test_errors_carry_cors_headers_too() -> None:
    app, _ = make_app(allow_origins=[APP_ORIGIN])
    async with app.test_server() as server:
        status, headers, _ = await send(server.port, "GET", "/missing", Origin=APP_ORIGIN)
        not_allowed, headers_405, _ = await send(server.port, "PUT", "/items", Origin=APP_ORIGIN)
    assert status == 404
    assert headers["access-control-allow-origin"] == APP_ORIGIN
    assert not_allowed == 405
    assert headers_405["access-control-allow-origin"] == APP_ORIGIN


async def test_websocket_handshakes_obey_allowed_origins_not_cors() -> None:
    app, _ = make_app(allow_origins=[APP_ORIGIN])
    async with app.test_server() as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with ws_connect(url, origin="https://chat.example.com") as websocket:
            assert await websocket.recv() == "hello"
            assert "access-control-allow-origin" not in websocket.response.headers
        refusal = await handshake_refusal(url, origin=APP_ORIGIN)
    assert refusal.status_code == 403


def test_configuration_mistakes_are_caught_at_construction() -> None:
    with pytest.raises(TypeError, match="a list, not a string"):
        CORSMiddleware(allow_origins="https://app.example.com")
    with pytest.raises(ValueError, match="is not an origin"):
        CORSMiddleware(allow_origins=["https://app.example.com/path"])
    with pytest.raises(ValueError, match="max_age"):
        CORSMiddleware(allow_origins=["*"], max_age=-1)


async def test_allowed_origins_take_subdomain_patterns_like_cors() -> None:
    app = Spikard(websocket=WebSocketConfig(allowed_origins=("https://*.example.com",)))

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> AsyncIterator[str]:
        yield "hello"

    async with app.test_server() as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with ws_connect(url, origin="https://eu.example.com") as websocket:
            assert await websocket.recv() == "hello"
        refusal = await handshake_refusal(url, origin="https://example.com")
    assert refusal.status_code == 403
