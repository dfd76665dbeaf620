"""``app.state``: a typed namespace for process-wide objects."""

from __future__ import annotations

import pytest

from spikard import Request, Spikard, State

pytestmark = pytest.mark.anyio


class Shared(State):
    greeting: str


def test_state_is_a_namespace_with_clear_errors() -> None:
    state = State(db="sqlite")
    assert state.db == "sqlite"
    state.count = 1
    assert "count" in state
    assert "missing" not in state
    with pytest.raises(AttributeError, match="'missing'"):
        _ = state.missing
    assert repr(state) == "State(db='sqlite', count=1)"


async def test_app_state_is_set_at_startup_and_seen_by_routes() -> None:
    app = Spikard(state=Shared())

    @app.on_startup
    def start() -> None:
        app.state.greeting = "hello"

    @app.get("/")
    def index(request: Request) -> str:
        return app.state.greeting

    async with app.test_server() as server:
        assert (await server.request("GET", "/")).text == "hello"


def test_a_default_app_has_an_empty_state() -> None:
    app = Spikard()
    assert isinstance(app.state, State)
    assert vars(app.state) == {}


async def test_socket_state_is_per_connection() -> None:
    from spikard import WebSocket

    app = Spikard()

    @app.websocket("/count")
    async def count(socket: WebSocket) -> None:
        await socket.accept()
        socket.state.seen = 0
        async for _ in socket:
            socket.state.seen += 1
            await socket.send(str(socket.state.seen))

    async with (
        app.test_server() as server,
        server.connect("/count") as one,
        server.connect("/count") as two,
    ):
        await one.send("a")
        await one.send("b")
        await two.send("c")
        assert [await one.receive_text(), await one.receive_text()] == ["1", "2"]
        assert await two.receive_text() == "1"
