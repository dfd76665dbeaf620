"""Mistakes in WebSocket handlers are caught at registration, in one format; extras are named.

Every message reads ``@app.websocket('/path'): name() (file.py:LINE) <problem>; <fix>``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from collections.abc import AsyncIterator
from typing import Any, Literal, TypedDict, cast

import anyio
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel
from websockets.exceptions import ConnectionClosed

from spikard import Request, RoutingError, Spikard, WebSocket, WebSocketResponse
from spikard.typed import InvalidMessage, MissingExtra, codec_for

from ..helpers import ws_connect
from .models import Join, Point, POut, Said, Say, Untagged1, Untagged2

HERE = "tests/typed/test_registration.py"


def registration_message(handler: Any, path: str = "/x", **keywords: Any) -> str:
    with pytest.raises(RoutingError) as raised:
        Spikard().add_websocket_route(path, handler, **keywords)
    return str(raised.value)


def assert_format(message: str, name: str, path: str = "/x") -> None:
    """The route, the function with its file and line, then ``problem; fix``."""
    pattern = rf"^@app\.websocket\('{re.escape(path)}'\): .*{name}\(\) \({HERE}:\d+\) .+; .+"
    assert re.match(pattern, message), message


def test_two_required_parameters() -> None:
    async def bad(socket: WebSocket, extra: str) -> None: ...

    message = registration_message(bad)
    assert_format(message, "bad")
    assert "takes 2 required parameters ('extra' too)" in message
    assert "take only the socket" in message


def test_a_path_placeholder_as_a_parameter_points_to_path_params() -> None:
    async def room(socket: WebSocket, name: str) -> None: ...

    message = registration_message(room, "/rooms/{name}")
    assert_format(message, "room", "/rooms/{name}")
    assert "socket.path_params['name']" in message


def test_keyword_only_parameter_nothing_can_fill() -> None:
    async def bad(socket: WebSocket, *, token: str) -> None: ...

    message = registration_message(bad)
    assert_format(message, "bad")
    assert "keyword-only parameter that nothing can fill ('token')" in message


def test_no_parameter() -> None:
    async def bare() -> None: ...

    message = registration_message(bare)
    assert_format(message, "bare")
    assert "take the socket: async def bare(socket: WebSocket)" in message


def test_not_callable() -> None:
    message = registration_message(cast("Any", "chat"))
    assert message.startswith("@app.websocket('/x'): ")
    assert "is not callable" in message


def test_first_parameter_annotated_with_something_spikard_cannot_pass() -> None:
    async def bad(count: int) -> None: ...

    message = registration_message(bad)
    assert_format(message, "bad")
    assert "annotates its first parameter 'int'" in message
    assert "annotate it WebSocket" in message


@pytest.mark.parametrize("annotation", ["str", "int", "dict[str, Any]", "str | None", "bytes"])
def test_return_annotations_that_send_nothing(annotation: str) -> None:
    namespace: dict[str, Any] = {"Any": Any}
    exec(f"async def handler(socket) -> {annotation}: ...", namespace)
    handler = namespace["handler"]
    with pytest.raises(RoutingError, match=r"is annotated to return .*, which sends no messages"):
        Spikard().add_websocket_route("/x", handler)


def _none(socket: WebSocket) -> None: ...


def _response(request: Request) -> WebSocketResponse:
    return WebSocketResponse(on_message=lambda m: m)


async def _iterator(socket: WebSocket) -> AsyncIterator[str]:
    yield "x"


def _anything(socket: WebSocket) -> Any: ...


def _object(socket: WebSocket) -> object: ...


def _unresolvable(socket: WebSocket) -> NotDefinedAnywhere:  # type: ignore[name-defined]  # noqa: F821
    ...


@pytest.mark.parametrize(
    "handler", [_none, _response, _iterator, _anything, _object, _unresolvable]
)
def test_return_annotations_that_can_produce_messages_register(handler: Any) -> None:
    Spikard().add_websocket_route("/x", handler)


def test_a_message_type_defined_after_the_handler() -> None:
    async def handler(socket: WebSocket[DefinedLater]) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    message = registration_message(handler)
    assert_format(message, "handler")
    assert "'WebSocket[DefinedLater]', which cannot be resolved" in message
    assert "define the message types before the handler, or pass receive=" in message
    Spikard().add_websocket_route("/x", handler, receive=Point)  # receive= says it


def test_every_mistake_is_a_routing_error_for_the_decorator_too() -> None:
    app = Spikard()
    with pytest.raises(RoutingError, match="takes 2 required parameters"):

        @app.websocket("/y")
        async def handler(socket: WebSocket, other: int) -> None: ...

    assert app.routes == ()


app = Spikard()


@app.websocket("/late")
async def late(socket: WebSocket):  # type: ignore[no-untyped-def]  # no annotation tells
    return "not messages"


async def test_a_wrong_result_fails_the_first_call_in_the_same_format(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, "spikard")
    async with app.test_server() as server, ws_connect(server.ws_url("/late")) as ws:
        with anyio.fail_after(5), pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1011
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None
    message = str(record.exc_info[1])
    assert_format(message, "late", "/late")
    assert "returned 'str'" in message


# ---- the libraries a type needs --------------------------------------------------------------


def test_a_struct_without_msgspec_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fresh(msgspec.Struct):  # a type no codec was built for yet
        a: int

    async def handler(socket: WebSocket[Fresh]) -> None: ...

    monkeypatch.setitem(sys.modules, "msgspec", None)
    message = registration_message(handler, receive=Fresh)
    assert_format(message, "handler")
    assert "need msgspec (not installed); pip install -e '.[msgspec]'" in message


def test_a_model_without_pydantic_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fresh(BaseModel):
        a: int

    async def handler(socket: WebSocket) -> None: ...

    monkeypatch.setitem(sys.modules, "pydantic", None)
    message = registration_message(handler, send=Fresh)
    assert "need pydantic (not installed); pip install -e '.[pydantic]'" in message


def test_dataclasses_fall_back_to_pydantic_without_msgspec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @dataclasses.dataclass
    class Fresh:
        a: int

    monkeypatch.setitem(sys.modules, "msgspec", None)
    codec = codec_for(Fresh)
    assert codec.library == "pydantic"
    assert codec.decode('{"a": 1}') == Fresh(a=1)
    with pytest.raises(InvalidMessage) as invalid:
        codec.decode('{"a": "x"}')
    assert invalid.value.errors[0]["loc"] == ["a"]
    monkeypatch.setitem(sys.modules, "pydantic", None)

    @dataclasses.dataclass
    class Other:
        b: int

    with pytest.raises(MissingExtra, match=r"pip install -e '\.\[msgspec\]'"):
        codec_for(Other)


def test_json_helpers_need_no_library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "msgspec", None)
    monkeypatch.setitem(sys.modules, "pydantic", None)

    async def handler(socket: WebSocket) -> AsyncIterator[dict[str, Any]]:
        async for value in socket.json():
            yield value

    Spikard().add_websocket_route("/x", handler, on_invalid="reply")


def test_an_untagged_union_says_how_to_tag_it() -> None:
    async def handler(socket: WebSocket[Untagged1 | Untagged2]) -> None: ...

    message = registration_message(handler)
    assert "give every member a type: Literal[...] field" in message


def test_bad_on_invalid_and_subprotocols() -> None:
    async def handler(socket: WebSocket) -> None: ...

    assert "on_invalid='ignore'" in registration_message(handler, on_invalid="ignore")
    assert "subprotocol 'a b'" in registration_message(handler, subprotocols=("a b",))


# ---- where the declared types come from -------------------------------------------------------


def test_keywords_win_over_annotations() -> None:
    async def handler(socket: WebSocket[Join]) -> AsyncIterator[Said]:
        yield Said(room="r", text="t")

    app = Spikard()
    app.add_websocket_route("/a", handler)
    app.add_websocket_route("/b", handler, receive=Point, send=POut)
    first, second = app.routes
    assert (first.receive_type, first.send_type) == (Join, Said)
    assert (second.receive_type, second.send_type) == (Point, POut)
    assert second.function is handler
    assert second.kind == "websocket"


def test_raw_annotations_declare_nothing() -> None:
    async def handler(socket: WebSocket[Any]) -> AsyncIterator[str | bytes]:
        yield "x"

    app = Spikard()
    app.add_websocket_route("/raw", handler)
    [route] = app.routes
    assert route.receive_type is None
    assert route.send_type is None


def test_callback_handlers_take_the_route_types() -> None:
    def handler(request: Request) -> WebSocketResponse:
        return WebSocketResponse(on_message=lambda m: m)

    app = Spikard()
    app.add_websocket_route("/cb", handler, receive=Join | Say, subprotocols=["v1"])
    [route] = app.routes
    assert route.receive_type == Join | Say
    assert route.subprotocols == ("v1",)


# ---- codecs: round trips --------------------------------------------------------------------


class Tagged(TypedDict):
    type: Literal["t"]
    n: int


@given(st.integers(), st.integers())
def test_struct_and_dataclass_round_trip(x: int, y: int) -> None:
    point = codec_for(Point)
    assert point.decode(point.encode(Point(x=x, y=y))) == Point(x=x, y=y)
    said = codec_for(Join | Say)
    assert said.decode(said.encode(Say(text=str(x)))) == Say(text=str(x))


@given(st.text(min_size=1), st.integers())
def test_pydantic_and_typeddict_round_trip(text: str, n: int) -> None:
    out = codec_for(POut)
    assert out.decode(out.encode(POut(text=text))) == POut(text=text)
    tagged = codec_for(Tagged)
    assert tagged.decode(tagged.encode({"type": "t", "n": n})) == {"type": "t", "n": n}


@given(st.binary(max_size=48) | st.text(max_size=48))
def test_any_input_decodes_or_is_an_invalid_message(data: str | bytes) -> None:
    codec = codec_for(Join | Say)
    outcome: Any
    try:
        outcome = codec.decode(data)
    except InvalidMessage as error:
        outcome = error
    if isinstance(outcome, InvalidMessage):
        assert outcome.errors
        assert set(outcome.errors[0]) == {"loc", "msg", "type"}
        assert len(str(outcome).encode()) <= 123
    else:
        assert isinstance(outcome, (Join, Say))
