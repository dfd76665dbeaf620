"""What kinds of message a route's direction carries, from its declared type.

A declared type is split into *parts*, one per kind of message on the wire, as the typed
sockets read and write them:

- nothing declared (``None``, ``Any``, ``object``, ``WebSocketMessage``): text and binary
  messages (an event stream: text data);
- what is sent raw: ``str`` (text), ``bytes``/``bytearray``/``memoryview`` (binary),
  ``ServerSentEvent`` (an event whose data is text); a type made only of these declares raw
  messages in both directions;
- anything else: a JSON message whose payload the type describes. A typed *receive* type is
  read as JSON whole, so there its ``str`` member is a JSON string; a typed *send* type
  still sends a yielded ``str`` or ``bytes`` raw;
- a union (``A | B``, also inside ``Annotated``): the parts of each member, so a tagged union
  becomes one JSON message per member. AsyncAPI's operation ``messages`` list is itself an
  exclusive choice: every message matches exactly one of them.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..messages import WebSocketMessage
from ..sse import ServerSentEvent

__all__ = ["BINARY", "TEXT", "Part", "message_parts", "sent_parts", "yielded_type"]


@dataclass(frozen=True, slots=True)
class Part:
    """One kind of message: raw text, raw binary, or JSON described by ``type``."""

    kind: Literal["text", "binary", "json"]
    type: Any = None


TEXT = Part("text")
BINARY = Part("binary")

_UNTYPED: tuple[Any, ...] = (None, Any, object, WebSocketMessage)
_BINARY: tuple[Any, ...] = (bytes, bytearray, memoryview)
_ITERATORS: tuple[Any, ...] = (
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
)


def _members(declared: Any) -> list[Any]:
    """The members of a (possibly nested, possibly ``Annotated``) union, or ``[declared]``."""
    inner = declared
    while typing.get_origin(inner) is typing.Annotated:
        inner = typing.get_args(inner)[0]
    origin = typing.get_origin(inner)
    if origin is typing.Union or origin is types.UnionType:
        return [member for arg in typing.get_args(inner) for member in _members(arg)]
    return [declared]


def _raw(member: Any) -> bool:
    return any(member is raw for raw in (*_UNTYPED, *_BINARY, str, ServerSentEvent))


def message_parts(
    declared: Any, *, receive: bool = False, events: bool = False
) -> tuple[Part, ...]:
    """The parts of ``declared``, in order, each once.

    Args:
        declared: the route's declared receive or send type (None: not declared).
        receive: ``declared`` is what the server receives (a typed one is JSON whole).
        events: the type of a Server-Sent Events stream (untyped events carry text only).
    """
    members = _members(declared)
    raw = all(_raw(member) or member is type(None) for member in members)
    parts: list[Part] = []
    for member in members:
        if receive and not raw:
            found = [Part("json", member)]
        elif any(member is untyped for untyped in _UNTYPED):
            found = [TEXT] if events else [TEXT, BINARY]
        elif member is str or member is ServerSentEvent:
            found = [TEXT]
        elif any(member is binary for binary in _BINARY):
            found = [BINARY]
        elif member is type(None) and raw:
            found = []  # a raw message is never null
        else:
            found = [Part("json", member)]
        parts.extend(part for part in found if part not in parts)
    return tuple(parts)


def sent_parts(
    declared: Any, function: Callable[..., Any] | None, *, events: bool = False
) -> tuple[Part, ...]:
    """What a route sends: its declared send type, and what its return annotation yields raw.

    A typed route still sends a yielded ``str`` or ``bytes`` as it is; registration keeps
    only the typed members in the route's send type, so ``AsyncIterator[str | Out]`` adds
    the text message here. Without a declared type the annotation is all there is.
    """
    annotated = yielded_type(function)
    if declared is None:
        return message_parts(annotated, events=events)
    raw = [m for m in _members(annotated) if m is str or m is ServerSentEvent or m in _BINARY]
    parts: list[Part] = []
    for member in [*raw, declared]:
        parts.extend(p for p in message_parts(member, events=events) if p not in parts)
    return tuple(parts)


def yielded_type(function: Callable[..., Any] | None) -> Any:
    """The ``X`` of a function's ``-> AsyncIterator[X]`` (or ``AsyncIterable``/``AsyncGenerator``).

    None when there is no such return annotation or it cannot be resolved.
    """
    if function is None:
        return None
    target = inspect.unwrap(function)
    try:
        returned = typing.get_type_hints(target, include_extras=True).get("return")
    except Exception:  # a name the annotation uses does not exist (yet)
        return None
    while typing.get_origin(returned) is typing.Annotated:
        returned = typing.get_args(returned)[0]
    origin = typing.get_origin(returned)
    if origin is not None and any(origin is iterator for iterator in _ITERATORS):
        arguments = typing.get_args(returned)
        return arguments[0] if arguments else None
    return None
