"""The message types a handler declares in its annotations, read once at registration.

``async def chat(socket: WebSocket[ChatIn]) -> AsyncIterator[ChatOut]`` receives ``ChatIn``
and sends ``ChatOut``; ``WebSocket`` alone, ``WebSocketMessage``, ``str``, ``bytes`` and
``Any`` declare nothing (raw messages). String annotations are resolved with
``typing.get_type_hints``; one that cannot be resolved declares nothing.
"""

from __future__ import annotations

import collections.abc
import functools
import inspect
import operator
import typing
from collections.abc import Callable
from typing import Any

from .families import is_raw, strip_annotated, union_members

__all__ = [
    "Unresolved",
    "declared",
    "iterated_type",
    "message_parameter_type",
    "resolved_hints",
]


class Unresolved:
    """The annotation could not be evaluated (a name that does not exist yet)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Unresolved({self.text!r})"


_ITERATORS: tuple[Any, ...] = (
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
)


def resolved_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The annotations of ``function`` evaluated, each one that cannot be as :class:`Unresolved`.

    ``Annotated`` metadata is kept (pydantic's ``Field(discriminator=...)`` lives there).
    """
    target = inspect.unwrap(function)
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:
        pass
    raw = getattr(target, "__annotations__", None) or {}
    namespace = getattr(target, "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in raw.items():
        if not isinstance(annotation, str):
            hints[name] = annotation
            continue
        try:
            # What get_type_hints does for each annotation, one at a time: the user's own
            # annotation text, in the namespace of the module that defines the function.
            hints[name] = eval(annotation, dict(namespace))
        except Exception:
            hints[name] = Unresolved(annotation)
    return hints


def declared(annotation: Any) -> Any:
    """``annotation``, or None when it declares nothing (raw messages, unresolvable, absent).

    In a union, raw members are left out: ``Said | WebSocketMessage`` declares ``Said``
    (the raw values are sent as they are).
    """
    if annotation is None or isinstance(annotation, Unresolved) or is_raw(annotation):
        return None
    members = union_members(annotation)
    if members is not None and typing.get_origin(annotation) is not typing.Annotated:
        typed = [m for m in members if not is_raw(m) and m is not type(None)]
        if len(typed) < len(members):
            return None if not typed else functools.reduce(operator.or_, typed)
    return annotation


def message_parameter_type(annotation: Any, socket_class: type) -> Any:
    """The ``X`` of a ``WebSocket[X]`` annotation; None for a bare or raw one."""
    if typing.get_origin(strip_annotated(annotation)) is socket_class:
        arguments = typing.get_args(strip_annotated(annotation))
        return declared(arguments[0]) if arguments else None
    return None


def iterated_type(annotation: Any) -> Any:
    """The item type of ``AsyncIterator[X]`` / ``AsyncIterable[X]`` / ``AsyncGenerator[X, _]``.

    None when the annotation is none of these, or declares raw messages.
    """
    annotation = strip_annotated(annotation)
    origin = typing.get_origin(annotation)
    if origin is None:
        return None
    if any(origin is iterator for iterator in _ITERATORS):
        arguments = typing.get_args(annotation)
        return declared(arguments[0]) if arguments else None
    return None


def union_or_none(annotation: Any) -> tuple[Any, ...]:
    """The members of a union annotation, or the annotation alone."""
    return union_members(annotation) or (annotation,)
