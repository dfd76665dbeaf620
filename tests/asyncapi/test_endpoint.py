"""``app.asyncapi()`` and the route that serves it, over real loopback sockets (spikard.testing)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import msgspec
import pytest

from spikard import Request, Spikard, WebSocket

from .checks import assert_valid

pytestmark = pytest.mark.anyio


class Tick(msgspec.Struct):
    n: int


class Opaque:
    """Neither msgspec nor pydantic has a JSON Schema for it."""


def make_app() -> Spikard:
    app = Spikard()

    @app.websocket("/rooms/{room}")
    async def room(socket: WebSocket) -> AsyncIterator[str]:
        """Talk in a room."""
        async for message in socket:
            yield message.as_text() or ""

    @app.sse("/ticks")
    async def ticks(request: Request) -> AsyncIterator[Tick]:
        yield Tick(1)

    return app


def test_app_asyncapi_describes_the_apps_routes() -> None:
    document = make_app().asyncapi(
        title="rooms", version="0.3.0", servers={"local": "ws://127.0.0.1:8000"}
    )
    assert_valid(document)
    assert document["info"] == {"title": "rooms", "version": "0.3.0"}
    assert document["servers"] == {"local": {"host": "127.0.0.1:8000", "protocol": "ws"}}
    assert list(document["channels"]) == ["rooms_room", "ticks"]


async def test_the_served_document_is_json_over_a_real_socket() -> None:
    app = make_app()
    app.add_asyncapi_route(title="rooms", version="0.3.0")
    async with app.test_server() as server:
        reply = await server.request("GET", "/asyncapi.json")
        head = await server.request("HEAD", "/asyncapi.json")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    document = json.loads(reply.body)
    assert_valid(document)
    assert document == app.asyncapi(title="rooms", version="0.3.0")
    assert "asyncapi_json" not in document["channels"]  # the route itself is HTTP
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-type"] == "application/json"
    assert head.headers["content-length"] == str(len(reply.body))


async def test_a_route_registered_after_the_first_request_shows_in_the_next() -> None:
    app = make_app()
    app.add_asyncapi_route("/docs/asyncapi.json")
    async with app.test_server() as server:
        first = json.loads((await server.request("GET", "/docs/asyncapi.json")).body)

        @app.websocket("/late")
        async def late(socket: WebSocket) -> None:
            await socket.accept()

        second = json.loads((await server.request("GET", "/docs/asyncapi.json")).body)
    assert "late" not in first["channels"]
    assert "late" in second["channels"]
    assert_valid(second)


async def test_a_type_without_a_schema_answers_500(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    app.add_asyncapi_route()

    @app.sse("/opaque")
    async def opaque(request: Request) -> AsyncIterator[Opaque]:
        yield Opaque()

    async with app.test_server() as server:
        assert (await server.request("GET", "/asyncapi.json")).status == 500
        assert (await server.request("GET", "/asyncapi.json")).status == 500
    logged = [r.exc_info[1] for r in caplog.records if r.name == "spikard.http" and r.exc_info]
    assert len(logged) == 2  # once per request, with the error that names the route
    assert all("@app.sse('/opaque'): the send type" in str(error) for error in logged)
