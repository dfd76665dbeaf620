"""Typed stream handlers over real sockets: every type family, each way to declare a type.

``assert_type`` lines are checked by mypy (the project runs it on tests): iterating a
``WebSocket[Join | Say]`` gives ``Join | Say`` statically, not raw messages.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from aiostream import pipe
from typing_extensions import assert_type
from websockets.exceptions import ConnectionClosed

from spikard import Spikard, WebSocket, WebSocketMessage
from spikard.typed import InvalidMessage

from ..helpers import ws_connect
from .models import (
    DJoin,
    DSay,
    Join,
    PChat,
    PJoin,
    Point,
    POut,
    PSay,
    Said,
    Say,
    TJoin,
    TSay,
)

app = Spikard()


@app.websocket("/struct")
async def struct_chat(socket: WebSocket[Join | Say]) -> AsyncIterator[Said]:
    room = "lobby"
    async for message in socket:
        assert_type(message, Join | Say)
        if isinstance(message, Join):
            room = message.room
        else:
            yield Said(room=room, text=message.text)


@app.websocket("/pydantic")
async def pydantic_chat(socket: WebSocket[PChat]) -> AsyncIterator[POut]:
    async for message in socket:
        if isinstance(message, PSay):
            yield POut(text=message.text)
        else:
            assert isinstance(message, PJoin)
            yield POut(text=f"joined {message.room}")


@app.websocket("/dataclass")
async def dataclass_chat(socket: WebSocket[DJoin | DSay]) -> AsyncIterator[DSay]:
    async for message in socket:
        text = message.room if isinstance(message, DJoin) else message.text
        yield DSay(type="say", text=f"{type(message).__name__}:{text}")


@app.websocket("/typeddict")
async def typeddict_chat(socket: WebSocket[TJoin | TSay]) -> AsyncIterator[TSay]:
    async for message in socket:
        assert isinstance(message, dict)
        yield {"type": "say", "text": json.dumps(message, sort_keys=True)}


@app.websocket("/point")
async def point(socket: WebSocket[Point]) -> None:
    while True:
        try:
            value = await socket.receive()
        except ConnectionClosed:
            return
        assert_type(value, Point)
        await socket.send(Point(x=value.y, y=value.x))


@app.websocket("/keywords", receive=Point, send=Point, on_invalid="reply")
async def keywords(socket: WebSocket[Any]) -> AsyncIterator[Any]:
    async for message in socket:  # the route's receive= declares the type (Any: none)
        yield Point(x=message.x + 1, y=message.y)


@app.websocket("/imperative", on_invalid="raise")
async def imperative(socket: WebSocket) -> AsyncIterator[object]:
    messages = socket.typed(Join | Say)
    while True:
        try:
            async for message in messages:
                yield {"class": type(message).__name__}
            return
        except InvalidMessage as error:
            yield {"invalid": error.errors}


@app.websocket("/pydantic-list", send=list[POut])
async def pydantic_list(socket: WebSocket[PSay]) -> AsyncIterator[object]:
    async for message in socket:
        yield [POut(text=message.text), POut(text=message.text.upper())]  # by list[POut]
        yield WebSocketMessage.text("raw passes through")


def _shout(message: PSay, *_: PSay) -> POut:
    return POut(text=message.text.upper())


@app.websocket("/pipe", send=POut)
def piped(socket: WebSocket[PSay]) -> Any:
    return socket | pipe.map(_shout)


@app.websocket("/chat", subprotocols=("chat.v2", "chat.v1"))
async def negotiated(socket: WebSocket) -> AsyncIterator[str]:
    async for _ in socket:  # the first read accepts, choosing from the route's list
        yield f"chose {socket.subprotocol}"


@app.websocket("/explicit-choice", subprotocols=("chat.v2", "chat.v1"))
async def explicit_choice(socket: WebSocket) -> AsyncIterator[str]:
    await socket.accept(subprotocol="chat.v1")
    yield f"chose {socket.subprotocol}"


async def close_of(ws: Any) -> tuple[int, str]:
    with anyio.fail_after(5):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason


async def exchange(path: str, *sent: str, replies: int) -> list[Any]:
    async with app.test_server() as server, ws_connect(server.ws_url(path)) as ws:
        with anyio.fail_after(5):
            for text in sent:
                await ws.send(text)
            return [json.loads(await ws.recv()) for _ in range(replies)]


async def test_tagged_structs() -> None:
    got = await exchange(
        "/struct", '{"type":"join","room":"r1"}', '{"type":"say","text":"hi"}', replies=1
    )
    assert got == [{"type": "said", "room": "r1", "text": "hi"}]


async def test_pydantic_discriminated_union() -> None:
    got = await exchange(
        "/pydantic", '{"type":"join","room":"r"}', '{"type":"say","text":"yo"}', replies=2
    )
    assert got == [{"type": "said", "text": "joined r"}, {"type": "said", "text": "yo"}]


async def test_union_of_dataclasses_by_type_field() -> None:
    got = await exchange(
        "/dataclass", '{"type":"join","room":"r"}', '{"type":"say","text":"t"}', replies=2
    )
    assert got == [{"type": "say", "text": "DJoin:r"}, {"type": "say", "text": "DSay:t"}]


async def test_union_of_typeddicts_by_type_field() -> None:
    [got] = await exchange("/typeddict", '{"type":"say","text":"t"}', replies=1)
    assert json.loads(got["text"]) == {"type": "say", "text": "t"}


async def test_coroutine_receive_and_send_typed() -> None:
    assert await exchange("/point", '{"x":1,"y":2}', replies=1) == [{"x": 2, "y": 1}]


@pytest.mark.parametrize(
    ("path", "payload", "reason"),
    [
        ("/struct", '{"type":"shout","text":"x"}', "invalid message at type: Invalid value"),
        ("/struct", '{"type":"say"}', "invalid message at text: Field required"),
        ("/pydantic", '{"type":"say","text":""}', "invalid message at say.text: String should"),
        ("/pydantic", '{"type":"nope"}', "invalid message: Input tag 'nope' found using 'type'"),
        ("/dataclass", '{"type":"say","text":3}', "invalid message at text: Expected `str`"),
        ("/dataclass", '{"room":"r"}', "invalid message at type: Field required"),
        ("/typeddict", '{"type":"join"}', "invalid message at room: Field required"),
        ("/point", "[1, 2]", "invalid message: Expected `object`, got `array`"),
        ("/point", "not json", "invalid message: JSON is malformed"),
    ],
)
async def test_invalid_messages_close_1007_naming_the_first_error(
    path: str, payload: str, reason: str
) -> None:
    async with app.test_server() as server, ws_connect(server.ws_url(path)) as ws:
        await ws.send(payload)
        code, got = await close_of(ws)
    assert code == 1007
    assert got.startswith(reason), got
    assert len(got.encode()) <= 123


async def test_long_reasons_are_cut_to_123_bytes() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/struct")) as ws:
        await ws.send(json.dumps({"type": "é" * 200}))
        code, reason = await close_of(ws)
    assert code == 1007
    assert reason.startswith("invalid message at type: Invalid value 'éé")
    assert reason.endswith("...")
    assert 100 < len(reason.encode()) <= 123


async def test_keywords_win_and_reply_goes_on() -> None:
    got = await exchange("/keywords", '{"x":"one","y":2}', '{"x":1,"y":2}', replies=2)
    assert got == [
        {
            "type": "error",
            "errors": [{"loc": ["x"], "msg": "Expected `int`, got `str`", "type": "type_error"}],
        },
        {"x": 2, "y": 2},
    ]


async def test_socket_typed_with_raise() -> None:
    got = await exchange(
        "/imperative",
        '{"type":"say","text":"a"}',
        '{"type":5}',
        '{"type":"join","room":"b"}',
        replies=3,
    )
    assert got[0] == {"class": "Say"}
    assert got[1]["invalid"][0]["loc"] == ["type"]
    assert got[2] == {"class": "Join"}


async def test_declared_send_type_encodes_containers_of_models() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/pydantic-list")) as ws:
        with anyio.fail_after(5):
            await ws.send('{"type":"say","text":"hey"}')
            assert json.loads(await ws.recv()) == [
                {"type": "said", "text": "hey"},
                {"type": "said", "text": "HEY"},
            ]
            assert await ws.recv() == "raw passes through"


async def test_aiostream_pipe_over_a_typed_socket() -> None:
    got = await exchange("/pipe", '{"type":"say","text":"up"}', replies=1)
    assert got == [{"type": "said", "text": "UP"}]


async def test_route_subprotocols_pick_the_clients_first_match() -> None:
    async with app.test_server() as server:
        for offered, chosen in [
            (["chat.v1", "chat.v2"], "chat.v1"),  # the client's order, as websockets does
            (["x", "chat.v2"], "chat.v2"),
            (["x"], None),
        ]:
            async with ws_connect(server.ws_url("/chat"), subprotocols=offered) as ws:
                with anyio.fail_after(5):
                    await ws.send("which?")
                    assert await ws.recv() == f"chose {chosen}"
                assert ws.subprotocol == chosen
        async with ws_connect(
            server.ws_url("/explicit-choice"), subprotocols=["chat.v2", "chat.v1"]
        ) as ws:
            with anyio.fail_after(5):
                assert await ws.recv() == "chose chat.v1"  # the handler's choice wins


def test_routes_carry_the_declared_types() -> None:
    routes = {route.pattern.template: route for route in app.routes}
    assert routes["/struct"].receive_type == Join | Say
    assert routes["/struct"].send_type is Said
    assert routes["/pydantic"].receive_type == PChat  # Annotated, with its discriminator
    assert routes["/keywords"].receive_type is Point
    assert routes["/keywords"].send_type is Point
    assert routes["/pydantic-list"].send_type == list[POut]
    assert routes["/imperative"].receive_type is None
    assert routes["/chat"].subprotocols == ("chat.v2", "chat.v1")
    assert routes["/chat"].receive_type is None
    assert routes["/chat"].send_type is None
    assert routes["/typeddict"].receive_type == TJoin | TSay
