"""What kinds of message a route's direction carries, from its declared type.

A declared type is split into *parts*, one per kind of message on the wire:

- nothing declared (``None``, ``Any``, ``object``, ``WebSocketMessage``): text and binary
  messages (an event stream: text data);
- ``str``: text, sent and received as it is; ``bytes`` (``bytearray``, ``memoryview``):
  binary; ``ServerSentEvent``: an event whose data is text;
- anything else: a JSON message whose payload the type describes;
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

__all__ = ["BINARY", "TEXT", "Part", "message_parts", "yielded_type"]


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


def message_parts(declared: Any, *, events: bool = False) -> tuple[Part, ...]:
    """The parts of ``declared``, in order, each once.

    Args:
        declared: the route's declared receive or send type (None: not declared).
        events: the type of a Server-Sent Events stream (untyped events carry text only).
    """
    parts: list[Part] = []
    for member in _members(declared):
        if any(member is untyped for untyped in _UNTYPED):
            found = [TEXT] if events else [TEXT, BINARY]
        elif member is str or member is ServerSentEvent:
            found = [TEXT]
        elif any(member is raw for raw in _BINARY):
            found = [BINARY]
        else:
            found = [Part("json", member)]
        parts.extend(part for part in found if part not in parts)
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
