"""Documents of routes registered as users write them, and the wire agreeing with them.

What a real server sends and accepts over a socket is validated against the payload schemas
of the document (with ``jsonschema``), and hypothesis checks that a schema accepts exactly
what the msgspec decoder of the same type accepts.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import msgspec
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikard import ConnectionClosed, Request, Spikard, WebSocket

from .checks import assert_valid, resolve

pytestmark = pytest.mark.anyio


class Join(msgspec.Struct, tag_field="type", tag="join"):
    """Enter a room."""

    name: str


class Say(msgspec.Struct, tag_field="type", tag="say"):
    """Say something to the room."""

    text: str


class Said(msgspec.Struct):
    """What everyone in the room sees."""

    room: str
    name: str
    text: str
    n: int


class Shout(pydantic.BaseModel):
    text: str


class Shouted(pydantic.BaseModel):
    text: str
    length: int


class Tick(msgspec.Struct):
    n: int


app = Spikard()


@app.websocket("/rooms/{room}", subprotocols=("chat.v2", "chat.v1"))
async def room(socket: WebSocket[Join | Say]) -> AsyncIterator[Said]:
    """A chat room.

    Join first, then say things.
    """
    name = "?"
    n = 0
    async for message in socket:
        if isinstance(message, Join):
            name = message.name
        else:
            n += 1
            yield Said(socket.path_params["room"], name, message.text, n)


@app.websocket("/shout", receive=Shout, send=Shouted)
async def shout(socket: WebSocket[Any]) -> AsyncIterator[Any]:
    async for message in socket:
        yield Shouted(text=message.text.upper(), length=len(message.text))


@app.websocket("/raw")
async def raw(socket: WebSocket) -> AsyncIterator[str]:
    async for message in socket:
        yield message.as_text() or ""


@app.sse("/ticks")
async def ticks(request: Request) -> AsyncIterator[Tick]:
    yield Tick(1)


def document() -> dict[str, Any]:
    built = app.asyncapi(title="rooms")
    assert_valid(built)
    return built


def payloads(built: dict[str, Any], operation: str) -> list[dict[str, Any]]:
    """A standalone schema for each message of ``operation`` (components carried along)."""
    schemas = []
    for ref in built["operations"][operation]["messages"]:
        message = resolve(built, resolve(built, ref["$ref"])["$ref"])
        schemas.append({"allOf": [message["payload"]], "components": built["components"]})
    return schemas


def matching(schemas: list[dict[str, Any]], value: Any) -> int:
    """How many of ``schemas`` accept ``value``."""
    return sum(jsonschema.Draft7Validator(schema).is_valid(value) for schema in schemas)


@functools.cache
def validators(operation: str) -> tuple[Any, ...]:
    """The validators of ``operation``'s payloads, built once (hypothesis calls them often)."""
    return tuple(jsonschema.Draft7Validator(s) for s in payloads(document(), operation))


def test_annotations_and_keywords_make_the_channels() -> None:
    built = document()
    assert list(built["channels"]) == ["rooms_room", "shout", "raw", "ticks"]
    rooms = built["channels"]["rooms_room"]
    assert rooms["summary"] == "A chat room."
    assert rooms["x-spikard-subprotocols"] == ["chat.v2", "chat.v1"]
    names = {
        operation: [ref["$ref"].rsplit("/", 1)[1] for ref in value["messages"]]
        for operation, value in built["operations"].items()
    }
    assert names == {
        "receive_rooms_room": ["Join", "Say"],
        "send_rooms_room": ["Said"],
        "receive_shout": ["Shout"],
        "send_shout": ["Shouted"],
        "receive_raw": ["text", "binary"],
        "send_raw": ["text"],
        "send_ticks": ["Tick"],
    }
    messages = built["components"]["messages"]
    assert messages["Join"]["summary"] == "Enter a room."


async def test_what_the_server_sends_and_accepts_matches_the_document() -> None:
    built = document()
    received = payloads(built, "receive_rooms_room")
    sent = payloads(built, "send_rooms_room")
    client_messages: list[Any] = [
        {"type": "join", "name": "ann"},
        {"type": "say", "text": "hello"},
        {"type": "say", "text": "again"},
    ]
    for value in client_messages:
        assert matching(received, value) == 1, value  # exactly one message: oneOf
    async with app.test_server() as server:
        async with server.connect("/rooms/lobby", subprotocols=["chat.v1"]) as ws:
            assert ws.subprotocol == "chat.v1"
            for value in client_messages:
                await ws.send_json(value)
            replies = [await ws.receive_json(), await ws.receive_json()]
        async with server.connect("/shout") as ws:
            await ws.send_json({"text": "hey"})
            shouted = await ws.receive_json()
    assert replies == [
        {"room": "lobby", "name": "ann", "text": "hello", "n": 1},
        {"room": "lobby", "name": "ann", "text": "again", "n": 2},
    ]
    for reply in replies:
        assert matching(sent, reply) == 1, reply
    assert shouted == {"text": "HEY", "length": 3}
    assert matching(payloads(built, "send_shout"), shouted) == 1


async def test_a_message_the_document_refuses_the_server_refuses() -> None:
    built = document()
    invalid = {"type": "say", "text": 5}
    assert matching(payloads(built, "receive_rooms_room"), invalid) == 0
    async with app.test_server() as server, server.connect("/rooms/lobby") as ws:
        await ws.send(json.dumps(invalid))
        with pytest.raises(ConnectionClosed):
            await ws.receive()
        assert ws.close_code == 1007


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["join", "say", "shout"]) | values,
        "name": values,
        "text": values,
    },
)


@settings(max_examples=150, deadline=None)
@given(messages)
def test_the_schema_accepts_exactly_what_msgspec_accepts(value: dict[str, Any]) -> None:
    checks = validators("receive_rooms_room")
    try:
        msgspec.json.decode(json.dumps(value), type=Join | Say)
    except msgspec.ValidationError:
        accepted = False
    else:
        accepted = True
    assert (sum(check.is_valid(value) for check in checks) == 1) == accepted, value


@settings(max_examples=100, deadline=None)
@given(st.fixed_dictionaries({}, optional={"text": values, "other": values}))
def test_what_the_pydantic_schema_accepts_pydantic_accepts(value: dict[str, Any]) -> None:
    if any(check.is_valid(value) for check in validators("receive_shout")):
        # pydantic's lax mode takes more than its schema says: one way only
        Shout.model_validate_json(json.dumps(value))


def test_the_typed_chat_example_is_documented() -> None:
    from examples.typed_chat import app as example

    built = example.asyncapi(title="typed chat")
    assert_valid(built)
    names = [
        ref["$ref"].rsplit("/", 1)[1] for ref in built["operations"]["receive_chat"]["messages"]
    ]
    assert names == ["Join", "Say", "Leave"]
    assert built["channels"]["chat"]["x-spikard-subprotocols"] == ["chat.v1"]
