"""An AsyncAPI 3.0.0 document of an application's WebSocket and Server-Sent Events routes.

The document describes the *application*, the server: its ``receive`` operations are what
clients send, its ``send`` operations what clients get. Each WebSocket route and each SSE
route is one channel:

- ``address`` is the route's path with its placeholders as ``{name}``; ``parameters``
  describes each one (its spikard type, ``str``/``int``/``float``/``path``, also in
  ``x-spikard-type``: AsyncAPI 3.0 parameters carry no schema);
- ``messages`` are references to ``components.messages``, whose payloads refer to
  ``components.schemas`` (see :mod:`spikard.asyncapi.schemas` and
  :mod:`spikard.asyncapi.parts`); a type used by several routes is one component;
- a WebSocket channel has a ``ws`` binding (``GET``), and the subprotocols it offers both
  as a ``Sec-WebSocket-Protocol`` header schema in that binding and as the list
  ``x-spikard-subprotocols``; it has a ``receive`` and a ``send`` operation;
- an SSE channel has one ``send`` operation with an ``http`` binding (``GET``), and says in
  its ``description`` that each message is the data of one event (``text/event-stream``);
- every channel says which kind of route it is in ``x-spikard-kind``;
- a typed route whose ``on_invalid`` is known says in its ``receive`` operation what an
  invalid message gets; with ``"reply"`` its ``send`` operation carries the
  ``InvalidMessageReply`` message (``{"type": "error", "errors": [...]}``).

The handler's docstring gives the channel its ``summary`` (first paragraph) and
``description`` (the rest). HTTP and static-file routes are left out: OpenAPI describes those.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..app.registration import describe_function
from ..app.routing import Route
from .parts import Part, message_parts, sent_parts
from .schemas import REF_PREFIX, Mode, SchemaRegistry, component_name

__all__ = ["ASYNCAPI_VERSION", "build_document", "dumps"]

ASYNCAPI_VERSION = "3.0.0"
"""The version of the AsyncAPI specification the documents follow."""

_PLACEHOLDER = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_]+))?}")

_PARAMETER_TEXT = {
    "str": "one path segment (no '/')",
    "int": "an integer (-?[0-9]+), one path segment",
    "float": "a decimal number (-?[0-9]+ with an optional .[0-9]+), one path segment",
    "path": "the rest of the path; may contain '/'",
}

_TEXT_MESSAGE = {
    "name": "text",
    "title": "Text",
    "summary": "A text message, UTF-8, taken as it is.",
    "contentType": "text/plain",
    "payload": {"type": "string"},
}
_BINARY_MESSAGE = {
    "name": "binary",
    "title": "Binary",
    "summary": "A binary message, taken as it is.",
    "contentType": "application/octet-stream",
    "payload": {"type": "string", "format": "binary"},
}
_EVENT_MESSAGE = {
    "name": "event",
    "title": "Event",
    "summary": "An event whose data is text.",
    "contentType": "text/plain",
    "payload": {"type": "string"},
}

_INVALID_REPLY = {
    "name": "InvalidMessageReply",
    "title": "Invalid message",
    "summary": "The answer to a message that is not JSON or not of its type.",
    "description": "What a route with on_invalid='reply' sends; the socket stays open. Each "
    "error names where (loc, a path into the message), what (msg) and its kind (type).",
    "contentType": "application/json",
    "payload": {
        "type": "object",
        "properties": {
            "type": {"const": "error"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                    "required": ["loc", "msg", "type"],
                },
            },
        },
        "required": ["type", "errors"],
    },
}
_ON_INVALID = {
    "close": "A message that is not JSON or not one of these closes the socket with 1007.",
    "reply": "A message that is not JSON or not one of these gets an InvalidMessageReply, "
    "and the socket stays open.",
    "raise": "A message that is not JSON or not one of these is handed to the handler.",
}

_SSE_NOTE = (
    "Server-Sent Events: GET this address (a browser uses EventSource); the response is a "
    "text/event-stream, and each message below is the data of one event."
)


@dataclass(frozen=True, slots=True)
class _Channel:
    route: Route[Any]
    id: str
    receive: tuple[Part, ...]
    send: tuple[Part, ...]


def build_document(
    routes: Iterable[Route[Any]],
    *,
    title: str = "spikard app",
    version: str = "1.0.0",
    description: str | None = None,
    servers: Mapping[str, str | Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return the AsyncAPI 3.0.0 document of the WebSocket and SSE routes among ``routes``.

    Args:
        routes: the application's routes (``app.routes``), in order.
        title: ``info.title``.
        version: ``info.version``, the version of the application (not of AsyncAPI).
        description: ``info.description``.
        servers: server name to a URL (``"wss://chat.example.com"``: protocol, host and
            path are taken from it) or to an AsyncAPI Server Object used as it is.

    Raises:
        TypeError: a declared message type has no JSON Schema (the message names the route),
            or the library it needs (msgspec, pydantic) is not installed.
        ValueError: a server URL without a scheme or host.
    """
    plans = _plan(routes)
    schemas = SchemaRegistry()
    payloads = _payloads(plans, schemas)
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for plan in plans:
        channel, channel_operations = _channel(plan, payloads, schemas, messages)
        channels[plan.id] = channel
        operations.update(channel_operations)
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    document: dict[str, Any] = {"asyncapi": ASYNCAPI_VERSION, "info": info}
    if servers:
        document["servers"] = {name: _server(name, server) for name, server in servers.items()}
    document["defaultContentType"] = "application/json"
    document["channels"] = channels
    document["operations"] = operations
    components: dict[str, Any] = {}
    if schemas.components:
        components["schemas"] = schemas.components
    if messages:
        components["messages"] = messages
    if components:
        document["components"] = components
    return document


def dumps(document: Mapping[str, Any], *, indent: int | None = None) -> str:
    """``document`` as JSON text (UTF-8 kept as it is; compact unless ``indent`` is given)."""
    separators = (",", ":") if indent is None else None
    return json.dumps(document, ensure_ascii=False, indent=indent, separators=separators)


# ---- planning: which channels, which parts ----------------------------------------------------


def _plan(routes: Iterable[Route[Any]]) -> list[_Channel]:
    plans: list[_Channel] = []
    taken: set[str] = set()
    for route in routes:
        if route.kind == "websocket":
            receive = message_parts(route.receive_type, receive=True)
            send = sent_parts(route.send_type, route.function)
        elif route.kind == "sse":
            receive, send = (), sent_parts(route.send_type, route.function, events=True)
        else:
            continue
        plans.append(_Channel(route, _channel_id(route, taken), receive, send))
    return plans


def _channel_id(route: Route[Any], taken: set[str]) -> str:
    """A key from the path (``/rooms/{room}`` is ``rooms_room``), unique in the document."""
    path = _PLACEHOLDER.sub(lambda found: found.group(1), route.pattern.template)
    base = re.sub(r"_+", "_", component_name(path.strip("/"))).strip("_") or "root"
    candidate = base
    if candidate in taken:
        candidate = f"{base}_{route.kind}"
    suffix = 1
    while candidate in taken:
        suffix += 1
        candidate = f"{base}_{route.kind}_{suffix}"
    taken.add(candidate)
    return candidate


def _where(plan: _Channel, direction: str) -> str:
    """``@app.websocket('/chat'): the send type of chat() (app.py:12)``, for errors."""
    route = plan.route
    text = f"@app.{route.kind}({route.pattern.template!r}): the {direction} type"
    if route.function is not None:
        text += f" of {describe_function(route.function)}"
    return text


def _payloads(plans: list[_Channel], schemas: SchemaRegistry) -> list[tuple[Part, Mode, Any]]:
    """The payload schema of every JSON part, each (type, mode) described once."""
    requests: list[tuple[Any, Mode, str]] = []
    keys: list[tuple[Part, Mode]] = []
    for plan in plans:
        uses: list[tuple[tuple[Part, ...], Mode, str]] = [
            (plan.receive, "validation", "receive"),
            (plan.send, "serialization", "send"),
        ]
        for parts, mode, direction in uses:
            for part in parts:
                if part.kind == "json" and (part, mode) not in keys:
                    keys.append((part, mode))
                    requests.append((part.type, mode, _where(plan, direction)))
    described = schemas.describe(requests)
    return [(part, mode, schema) for (part, mode), schema in zip(keys, described, strict=True)]


# ---- the channel, its messages and operations -------------------------------------------------


def _channel(
    plan: _Channel,
    payloads: list[tuple[Part, Mode, Any]],
    schemas: SchemaRegistry,
    messages: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    route = plan.route
    address, parameters = _address(route.pattern.template)
    channel: dict[str, Any] = {"address": address}
    function = route.function
    if function is not None and getattr(function, "__name__", None):
        channel["title"] = function.__name__
    summary, description = _docstring(function)
    if route.kind == "sse":
        description = f"{description}\n\n{_SSE_NOTE}" if description else _SSE_NOTE
    if summary:
        channel["summary"] = summary
    if description:
        channel["description"] = description
    if parameters:
        channel["parameters"] = parameters
    channel_messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    directions: list[tuple[str, tuple[Part, ...], Mode]] = [
        ("receive", plan.receive, "validation"),
        ("send", plan.send, "serialization"),
    ]
    # The route's on_invalid outcome, when the route says (a name; a function: "raise").
    on_invalid = getattr(route, "on_invalid", None)
    if on_invalid is not None and not isinstance(on_invalid, str):
        on_invalid = "raise"
    typed = any(part.kind == "json" for part in plan.receive)
    for action, parts, mode in directions:
        if not parts:
            continue
        names = []
        inline = 0
        for part in parts:
            message, preferred = _message(part, mode, payloads, schemas, route.kind == "sse")
            if preferred is None:  # an unnamed type (list[int]): named after its use
                inline += 1
                preferred = f"{plan.id}_{action}" + (f"_{inline}" if inline > 1 else "")
                message = {"name": preferred, **message}
            name = _add_message(messages, preferred, message)
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
            names.append(name)
        if action == "send" and typed and on_invalid == "reply":
            name = _add_message(messages, "InvalidMessageReply", dict(_INVALID_REPLY))
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
            names.append(name)
        operation = _operation(plan, action, address, names)
        if action == "receive" and typed and on_invalid in _ON_INVALID:
            operation["description"] = _ON_INVALID[on_invalid]
        operations[f"{action}_{plan.id}"] = operation
    channel["messages"] = channel_messages
    if route.kind == "websocket":
        channel["bindings"] = {"ws": _ws_binding(route.subprotocols)}
    channel["x-spikard-kind"] = route.kind
    if route.subprotocols:
        channel["x-spikard-subprotocols"] = list(route.subprotocols)
    return channel, operations


def _operation(plan: _Channel, action: str, address: str, names: list[str]) -> dict[str, Any]:
    if plan.route.kind == "sse":
        summary = f"Events the server streams to clients that GET {address}."
    elif action == "receive":
        summary = f"What clients send on {address} (the server receives it)."
    else:
        summary = f"What the server sends to clients on {address}."
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{plan.id}"},
        "summary": summary,
        "messages": [{"$ref": f"#/channels/{plan.id}/messages/{name}"} for name in names],
    }
    if plan.route.kind == "sse":
        operation["bindings"] = {"http": {"method": "GET", "bindingVersion": "0.3.0"}}
    return operation


def _message(
    part: Part,
    mode: Mode,
    payloads: list[tuple[Part, Mode, Any]],
    schemas: SchemaRegistry,
    events: bool,
) -> tuple[dict[str, Any], str | None]:
    """A Message Object and its preferred component name (None: name it after the channel)."""
    if part.kind == "text":
        return dict(_EVENT_MESSAGE if events else _TEXT_MESSAGE), "event" if events else "text"
    if part.kind == "binary":
        return dict(_BINARY_MESSAGE), "binary"
    payload = next(schema for p, m, schema in payloads if p == part and m == mode)
    message: dict[str, Any] = {}
    preferred = None
    reference = payload.get("$ref") if isinstance(payload, dict) and len(payload) == 1 else None
    if isinstance(reference, str) and reference.startswith(REF_PREFIX):
        preferred = reference[len(REF_PREFIX) :]
        message["name"] = preferred
        component = schemas.components.get(preferred, {})
        if isinstance(component.get("title"), str):
            message["title"] = component["title"]
        if isinstance(component.get("description"), str):  # the type's docstring
            message["summary"] = " ".join(component["description"].split("\n\n")[0].split())
    message["contentType"] = "application/json"
    message["payload"] = payload
    return message, preferred


def _add_message(messages: dict[str, Any], preferred: str, message: dict[str, Any]) -> str:
    """Store ``message`` under ``preferred`` (or ``preferred_2``...); the same one is kept once."""
    base = component_name(preferred)
    name, suffix = base, 1
    while name in messages and messages[name] != message:
        suffix += 1
        name = f"{base}_{suffix}"
    messages.setdefault(name, message)
    return name


def _address(template: str) -> tuple[str, dict[str, Any]]:
    parameters: dict[str, Any] = {}

    def placeholder(found: re.Match[str]) -> str:
        name, kind = found.group(1), found.group(2) or "str"
        parameters[name] = {
            "description": f"Path parameter {name!r} ({kind}): "
            + _PARAMETER_TEXT.get(kind, "a path segment"),
            "x-spikard-type": kind,
        }
        return "{" + name + "}"

    return _PLACEHOLDER.sub(placeholder, template), parameters


def _ws_binding(subprotocols: tuple[str, ...]) -> dict[str, Any]:
    binding: dict[str, Any] = {"method": "GET"}
    if subprotocols:
        offered = ", ".join(subprotocols)
        binding["headers"] = {
            "type": "object",
            "properties": {
                "Sec-WebSocket-Protocol": {
                    "type": "string",
                    "description": "The subprotocols the client offers, comma-separated; "
                    f"the server speaks {offered} (in its order of preference) and "
                    "answers with the one it chose.",
                    "examples": list(subprotocols),
                }
            },
        }
    binding["bindingVersion"] = "0.1.0"
    return binding


def _docstring(function: Any) -> tuple[str, str]:
    """``(summary, description)``: the first paragraph on one line, and the rest."""
    if function is None:
        return "", ""
    target = inspect.unwrap(function)
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        return "", ""
    text = inspect.getdoc(target) or ""
    first, _, rest = text.strip().partition("\n\n")
    return " ".join(first.split()), rest.strip()


def _server(name: str, server: str | Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(server, str):
        return dict(server)
    parts = urlsplit(server)
    if not parts.scheme or not parts.netloc:
        raise ValueError(
            f"server {name!r}: {server!r} is not a URL with a scheme and a host, "
            "like 'wss://chat.example.com'"
        )
    described: dict[str, Any] = {"host": parts.netloc, "protocol": parts.scheme}
    if parts.path:
        described["pathname"] = parts.path
    return described
