"""AsyncAPI documents of registered routes: channels, messages, operations, bindings.

Every document built here is checked against the official AsyncAPI 3.0.0 schema and the
rules it cannot express (``checks.py``). Declared message types are set on the registered
route with ``app.add_websocket_route(path, chat, receive=..., send=..., subprotocols=...)``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypedDict, TypeVar

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import msgspec
import pydantic
import pytest

from spikard import Request, ServerSentEvent, Spikard, WebSocket, WebSocketMessage
from spikard.app.routing import PathPattern, Route
from spikard.asyncapi import ASYNCAPI_VERSION, build_document, dumps

from .checks import assert_valid, resolve

T = TypeVar("T")

# ---- message types, one per family ----------------------------------------------------------


class ChatStruct(msgspec.Struct):
    """A chat line (msgspec)."""

    text: str
    n: int = 0


@dataclasses.dataclass
class ChatData:
    """A chat line (dataclass)."""

    text: str
    n: int = 0


class ChatDict(TypedDict):
    text: str
    n: int


class ChatModel(pydantic.BaseModel):
    """A chat line (pydantic).

    The rest of the docstring.
    """

    text: str
    n: int = 0


class Join(msgspec.Struct, tag_field="type", tag="join"):
    room: str


class Say(msgspec.Struct, tag_field="type", tag="say"):
    text: str


class Envelope(msgspec.Struct):
    event: Join | Say
    at: tuple[int, str] = (0, "")


class JoinModel(pydantic.BaseModel):
    type: Literal["join"]
    room: str


class SayModel(pydantic.BaseModel):
    type: Literal["say"]
    text: str


@dataclasses.dataclass
class JoinData:
    type: Literal["join"]
    room: str


@dataclasses.dataclass
class SayData:
    type: Literal["say"]
    text: str


class Page(msgspec.Struct, Generic[T]):
    items: list[T]


class Tick(msgspec.Struct):
    n: int


def struct_named_msg(field: str) -> type[msgspec.Struct]:
    """A Struct called ``Msg`` with one int field: same name, different types."""
    return msgspec.defstruct("Msg", [(field, int)])


# ---- helpers -------------------------------------------------------------------------------


def typed_app(path: str = "/chat", **declared: Any) -> Spikard:
    """An app with ``chat`` on ``path``, registered with ``receive=``, ``send=``, ...."""
    app = Spikard()
    app.add_websocket_route(path, chat, **declared)
    return app


def document_of(app: Spikard, **kwargs: Any) -> dict[str, Any]:
    document = build_document(app.routes, **kwargs)
    assert_valid(document)
    return document


def message_names(document: dict[str, Any], operation: str) -> list[str]:
    refs = [m["$ref"] for m in document["operations"][operation]["messages"]]
    return [ref.rsplit("/", 1)[1] for ref in refs]


def payload(document: dict[str, Any], message: str) -> Any:
    """The payload schema of a component message, its ``$ref`` followed."""
    schema = document["components"]["messages"][message]["payload"]
    return resolve(document, schema["$ref"]) if "$ref" in schema else schema


async def chat(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    """Chat with everyone.

    Each line goes to every client.
    """
    async for message in socket:
        yield message


def echo_app(*paths: str) -> Spikard:
    app = Spikard()
    for path in paths or ("/chat",):
        app.add_websocket_route(path, chat)
    return app


# ---- the document --------------------------------------------------------------------------


def test_no_routes_is_a_valid_empty_document() -> None:
    document = document_of(Spikard())
    assert document == {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": "spikard app", "version": "1.0.0"},
        "defaultContentType": "application/json",
        "channels": {},
        "operations": {},
    }


def test_info_from_the_arguments() -> None:
    document = document_of(Spikard(), title="chat", version="2.1.0", description="Rooms.")
    assert document["info"] == {"title": "chat", "version": "2.1.0", "description": "Rooms."}


def test_http_and_static_routes_are_left_out(tmp_path: Path) -> None:
    app = Spikard()

    @app.get("/items/{id:int}")
    def item(id: int) -> dict[str, int]:
        return {"id": id}

    app.static("/assets", tmp_path)
    assert document_of(app)["channels"] == {}


def test_untyped_websocket_route_carries_text_and_binary_both_ways() -> None:
    document = document_of(echo_app())
    channel = document["channels"]["chat"]
    assert channel["address"] == "/chat"
    assert channel["title"] == "chat"
    assert channel["summary"] == "Chat with everyone."
    assert channel["description"] == "Each line goes to every client."
    assert channel["bindings"] == {"ws": {"method": "GET", "bindingVersion": "0.1.0"}}
    assert channel["x-spikard-kind"] == "websocket"
    assert "parameters" not in channel
    assert set(document["operations"]) == {"receive_chat", "send_chat"}
    receive = document["operations"]["receive_chat"]
    assert receive["action"] == "receive"
    assert receive["channel"] == {"$ref": "#/channels/chat"}
    assert message_names(document, "receive_chat") == ["text", "binary"]
    assert message_names(document, "send_chat") == ["text", "binary"]
    messages = document["components"]["messages"]
    assert messages["text"]["contentType"] == "text/plain"
    assert messages["text"]["payload"] == {"type": "string"}
    assert messages["binary"]["payload"] == {"type": "string", "format": "binary"}
    assert "schemas" not in document["components"]


def test_callback_style_route_is_untyped() -> None:
    from spikard import WebSocketResponse

    app = Spikard()

    async def on_message(message: WebSocketMessage) -> WebSocketMessage:
        return message

    @app.websocket("/rpc")
    def rpc(request: Request) -> WebSocketResponse:
        return WebSocketResponse(on_message=on_message)

    document = document_of(app)
    assert message_names(document, "send_rpc") == ["text", "binary"]
    assert "summary" not in document["channels"]["rpc"]


def test_return_annotation_narrows_what_an_untyped_route_sends() -> None:
    app = Spikard()

    @app.websocket("/shout")
    async def shout(socket: WebSocket) -> AsyncIterator[str]:
        async for message in socket:
            yield (message.as_text() or "").upper()

    @app.websocket("/blobs")
    async def blobs(socket: WebSocket) -> AsyncIterator[bytes]:
        yield b""

    document = document_of(app)
    assert message_names(document, "receive_shout") == ["text", "binary"]
    assert message_names(document, "send_shout") == ["text"]
    assert message_names(document, "send_blobs") == ["binary"]


@pytest.mark.parametrize(
    ("declared", "name"),
    [
        (ChatStruct, "ChatStruct"),
        (ChatData, "ChatData"),
        (ChatDict, "ChatDict"),
        (ChatModel, "ChatModel"),
    ],
)
def test_typed_route_payloads_come_from_the_type(declared: Any, name: str) -> None:
    app = typed_app(receive=declared, send=declared)
    document = document_of(app)
    assert message_names(document, "receive_chat") == [name]
    assert message_names(document, "send_chat") == [name]
    message = document["components"]["messages"][name]
    assert message["contentType"] == "application/json"
    assert message["payload"] == {"$ref": f"#/components/schemas/{name}"}
    schema = payload(document, name)
    assert schema["type"] == "object"
    assert schema["properties"]["text"]["type"] == "string"
    assert schema["properties"]["n"]["type"] == "integer"
    assert "text" in schema["required"]
    assert list(document["channels"]["chat"]["messages"]) == [name]


def test_the_types_docstring_is_the_messages_summary() -> None:
    app = typed_app(receive=ChatModel)
    message = document_of(app)["components"]["messages"]["ChatModel"]
    assert message["summary"] == "A chat line (pydantic)."


def test_pydantic_describes_receive_for_validation_and_send_for_serialization() -> None:
    class Stamped(pydantic.BaseModel):
        text: str

        @pydantic.computed_field  # type: ignore[prop-decorator]
        @property
        def length(self) -> int:  # sent, never received
            return len(self.text)

    document = document_of(typed_app(receive=Stamped, send=Stamped))
    assert message_names(document, "receive_chat") == ["Stamped-Input"]
    assert message_names(document, "send_chat") == ["Stamped-Output"]
    assert set(payload(document, "Stamped-Input")["properties"]) == {"text"}
    assert set(payload(document, "Stamped-Output")["required"]) == {"text", "length"}


def test_tagged_struct_union_is_one_message_per_member() -> None:
    app = typed_app(receive=Join | Say, send=Say)
    document = document_of(app)
    assert message_names(document, "receive_chat") == ["Join", "Say"]
    assert message_names(document, "send_chat") == ["Say"]
    assert payload(document, "Join")["properties"]["type"] == {"enum": ["join"]}
    assert payload(document, "Say")["properties"]["type"] == {"enum": ["say"]}
    assert set(document["components"]["schemas"]) == {"Join", "Say"}


def test_pydantic_discriminated_union_is_one_message_per_member() -> None:
    union = Annotated[JoinModel | SayModel, pydantic.Field(discriminator="type")]
    document = document_of(typed_app(receive=union))
    assert message_names(document, "receive_chat") == ["JoinModel", "SayModel"]
    assert payload(document, "SayModel")["properties"]["type"]["const"] == "say"


def test_union_of_tagged_dataclasses_is_one_message_per_member() -> None:
    app = typed_app(receive=JoinData | SayData)
    document = document_of(app)
    assert message_names(document, "receive_chat") == ["JoinData", "SayData"]
    assert payload(document, "JoinData")["properties"]["type"] == {"enum": ["join"]}


def test_a_tagged_union_inside_a_type_is_one_of_with_a_string_discriminator() -> None:
    app = typed_app(receive=Envelope)
    document = document_of(app)
    event = payload(document, "Envelope")["properties"]["event"]
    assert event == {
        "oneOf": [{"$ref": "#/components/schemas/Join"}, {"$ref": "#/components/schemas/Say"}],
        "discriminator": "type",
    }


def test_tuples_are_written_in_draft_07() -> None:
    app = typed_app(receive=Envelope)
    at = payload(document_of(app), "Envelope")["properties"]["at"]
    assert at["items"] == [{"type": "integer"}, {"type": "string"}]
    assert at["additionalItems"] is False
    assert "prefixItems" not in at


async def mixed(socket: WebSocket) -> AsyncIterator[str | ChatStruct]:
    yield "a line of text, sent as it is"
    yield ChatStruct("sent as JSON")


def test_raw_and_json_members_of_one_union() -> None:
    app = Spikard()
    app.add_websocket_route("/mixed", mixed)
    assert message_names(document_of(app), "send_mixed") == ["text", "ChatStruct"]


def test_a_typed_receive_type_is_json_whole() -> None:
    app = typed_app(receive=int | ChatStruct)
    document = document_of(app)
    assert message_names(document, "receive_chat") == ["chat_receive", "ChatStruct"]
    assert payload(document, "chat_receive") == {"type": "integer"}
    route = dataclasses.replace(app.routes[0], receive_type=str | ChatStruct)
    document = build_document([route])  # a str member received is a JSON string
    assert payload(document, "chat_receive") == {"type": "string"}


def test_an_unnamed_type_is_an_inline_message_named_after_its_channel() -> None:
    app = typed_app("/numbers", receive=list[int], send=dict[str, float])
    document = document_of(app)
    assert message_names(document, "receive_numbers") == ["numbers_receive"]
    assert message_names(document, "send_numbers") == ["numbers_send"]
    messages = document["components"]["messages"]
    assert messages["numbers_receive"]["payload"] == {"type": "array", "items": {"type": "integer"}}
    assert messages["numbers_send"]["payload"]["additionalProperties"] == {"type": "number"}


def test_generic_type_names_keep_to_the_key_pattern() -> None:
    app = typed_app(send=Page[ChatStruct])
    document = document_of(app)
    [name] = message_names(document, "send_chat")
    assert name == "Page_ChatStruct_"
    assert payload(document, name)["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/ChatStruct"
    }


@pytest.mark.parametrize(
    ("template", "address", "kind"),
    [
        ("/rooms/{room}", "/rooms/{room}", "str"),
        ("/tables/{table:int}", "/tables/{table}", "int"),
        ("/at/{x:float}", "/at/{x}", "float"),
        ("/files/{rest:path}", "/files/{rest}", "path"),
    ],
)
def test_path_parameters(template: str, address: str, kind: str) -> None:
    document = document_of(echo_app(template))
    [channel] = document["channels"].values()
    assert channel["address"] == address
    [(name, parameter)] = channel["parameters"].items()
    assert address == template.split("{")[0] + "{" + name + "}"
    assert parameter["x-spikard-type"] == kind
    assert f"({kind})" in parameter["description"]


def test_several_parameters_in_one_address() -> None:
    document = document_of(echo_app("/games/{game:int}/players/{name}"))
    channel = document["channels"]["games_game_players_name"]
    assert channel["address"] == "/games/{game}/players/{name}"
    assert list(channel["parameters"]) == ["game", "name"]


def test_subprotocols_in_the_binding_and_the_extension() -> None:
    app = typed_app(subprotocols=("chat.v2", "chat.v1"))
    channel = document_of(app)["channels"]["chat"]
    header = channel["bindings"]["ws"]["headers"]["properties"]["Sec-WebSocket-Protocol"]
    assert header["type"] == "string"
    assert header["examples"] == ["chat.v2", "chat.v1"]
    assert "chat.v2, chat.v1" in header["description"]
    assert channel["x-spikard-subprotocols"] == ["chat.v2", "chat.v1"]


async def tick_events(request: Request) -> AsyncIterator[Tick]:
    """Ticks, once a second."""
    yield Tick(1)


async def text_events(request: Request) -> AsyncIterator[str]:
    yield "tick"


async def raw_events(request: Request) -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent("tick")


def test_sse_route_is_a_send_only_channel_typed_by_its_return_annotation() -> None:
    app = Spikard()
    app.sse("/ticks")(tick_events)
    document = document_of(app)
    channel = document["channels"]["ticks"]
    assert channel["address"] == "/ticks"
    assert channel["summary"] == "Ticks, once a second."
    assert "text/event-stream" in channel["description"]
    assert channel["x-spikard-kind"] == "sse"
    assert "bindings" not in channel
    assert list(document["operations"]) == ["send_ticks"]
    operation = document["operations"]["send_ticks"]
    assert operation["action"] == "send"
    assert operation["bindings"] == {"http": {"method": "GET", "bindingVersion": "0.3.0"}}
    assert message_names(document, "send_ticks") == ["Tick"]
    assert payload(document, "Tick")["properties"] == {"n": {"type": "integer"}}


@pytest.mark.parametrize("events", [text_events, raw_events])
def test_sse_route_of_text_events(events: Any) -> None:
    app = Spikard()
    app.sse("/events")(events)
    document = document_of(app)
    assert message_names(document, "send_events") == ["event"]
    assert document["components"]["messages"]["event"]["payload"] == {"type": "string"}


def test_websocket_and_sse_on_one_path_are_two_channels() -> None:
    app = echo_app("/live")
    app.sse("/live")(tick_events)
    document = document_of(app)
    assert list(document["channels"]) == ["live", "live_sse"]
    assert set(document["operations"]) == {"receive_live", "send_live", "send_live_sse"}


def test_two_routes_sharing_a_type_share_its_components() -> None:
    app = typed_app("/a", receive=ChatStruct, send=Page[Tick])
    app.add_websocket_route("/b", chat, receive=ChatStruct, send=Tick)
    app.sse("/c")(tick_events)
    document = document_of(app)
    components = document["components"]
    assert sorted(components["schemas"]) == ["ChatStruct", "Page_Tick_", "Tick"]
    assert sorted(components["messages"]) == ["ChatStruct", "Page_Tick_", "Tick"]
    for channel in ("a", "b"):
        assert document["channels"][channel]["messages"]["ChatStruct"] == {
            "$ref": "#/components/messages/ChatStruct"
        }
    assert message_names(document, "send_b") == message_names(document, "send_c") == ["Tick"]


def test_different_types_of_one_name_get_distinct_components() -> None:
    first, second = struct_named_msg("a"), struct_named_msg("b")
    app = typed_app("/one", receive=first)
    app.add_websocket_route("/two", chat, receive=second)
    document = document_of(app)
    [one] = message_names(document, "receive_one")
    [two] = message_names(document, "receive_two")
    assert one != two
    assert set(payload(document, one)["properties"]) == {"a"}
    assert set(payload(document, two)["properties"]) == {"b"}
    assert len(document["components"]["schemas"]) == 2


def test_a_type_no_library_describes_names_its_route() -> None:
    class Opaque:
        pass

    # Registration refuses such a type for its codec; a route built by hand carries it.
    route: Route[None] = Route(
        PathPattern("/opaque"), frozenset({"GET"}), None, function=chat, kind="websocket"
    )
    with pytest.raises(TypeError) as raised:
        build_document([dataclasses.replace(route, send_type=Opaque)])
    text = str(raised.value)
    assert text.startswith("@app.websocket('/opaque'): the send type of chat() (")
    assert "test_document.py:" in text  # the function's file and line
    assert "is test_a_type_no_library_describes_names_its_route.<locals>.Opaque, which" in text
    assert text.endswith("declare a msgspec Struct, a pydantic model, a dataclass or a TypedDict")


def test_servers_from_urls_and_objects() -> None:
    servers: dict[str, Any] = {
        "production": "wss://chat.example.com/api",
        "local": "ws://127.0.0.1:8000",
        "custom": {"host": "example.org", "protocol": "wss", "description": "by hand"},
    }
    document = document_of(echo_app(), servers=servers)
    assert document["servers"] == {
        "production": {"host": "chat.example.com", "protocol": "wss", "pathname": "/api"},
        "local": {"host": "127.0.0.1:8000", "protocol": "ws"},
        "custom": {"host": "example.org", "protocol": "wss", "description": "by hand"},
    }


@pytest.mark.parametrize("url", ["chat.example.com", "wss://", "/chat"])
def test_a_server_that_is_not_a_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="is not a URL"):
        build_document((), servers={"bad": url})


def test_routes_built_by_hand() -> None:
    route: Route[None] = Route(
        PathPattern("/feed/{topic}"),
        frozenset({"GET"}),
        None,
        kind="websocket",
        receive_type=ChatStruct,
    )
    document = build_document([route])
    assert_valid(document)
    channel = document["channels"]["feed_topic"]
    assert "title" not in channel
    assert message_names(document, "receive_feed_topic") == ["ChatStruct"]
    assert message_names(document, "send_feed_topic") == ["text", "binary"]


def test_dumps_is_compact_json_unless_indented() -> None:
    document = document_of(Spikard(), title="Café ☕")
    text = dumps(document)
    assert json.loads(text) == document
    assert "Café ☕" in text
    assert ": " not in text
    assert "\n" in dumps(document, indent=2)


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyRoute(Route[Any]):
    """A route that carries its ``on_invalid`` outcome, which the document reads."""

    on_invalid: Any = "close"


def policy_route(on_invalid: Any, receive: Any = ChatStruct) -> PolicyRoute:
    return PolicyRoute(
        PathPattern("/chat"),
        frozenset({"GET"}),
        None,
        function=chat,
        kind="websocket",
        receive_type=receive,
        send_type=Tick,
        on_invalid=on_invalid,
    )


def test_a_route_that_replies_to_invalid_messages_documents_the_reply() -> None:
    from spikard.typed import InvalidMessage

    document = build_document([policy_route("reply")])
    assert_valid(document)
    assert message_names(document, "send_chat") == ["Tick", "InvalidMessageReply"]
    assert "InvalidMessageReply" in document["operations"]["receive_chat"]["description"]
    reply = InvalidMessage([{"loc": ["items", 0], "msg": "Expected `int`", "type": "type"}]).reply()
    schema = {"allOf": [payload(document, "InvalidMessageReply")]}
    assert jsonschema.Draft7Validator(schema).is_valid(reply)
    assert not jsonschema.Draft7Validator(schema).is_valid({"type": "error"})


@pytest.mark.parametrize(
    ("on_invalid", "says"), [("close", "1007"), ("raise", "handler"), (print, "handler")]
)
def test_the_receive_operation_says_what_an_invalid_message_gets(
    on_invalid: Any, says: str
) -> None:
    document = build_document([policy_route(on_invalid)])
    assert_valid(document)
    assert says in document["operations"]["receive_chat"]["description"]
    assert message_names(document, "send_chat") == ["Tick"]


def test_an_untyped_route_has_no_invalid_messages() -> None:
    document = build_document([policy_route("reply", receive=None)])
    assert "description" not in document["operations"]["receive_chat"]
    assert message_names(document, "send_chat") == ["Tick"]
