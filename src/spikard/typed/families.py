"""What kind of type a message type is, without importing the library that defines it.

A class is recognised by its bases' module names, so a Struct or a pydantic model is known
for what it is even when its library cannot be imported (the registration error then names
the extra to install).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import typing_extensions

from ..messages import WebSocketMessage

__all__ = [
    "is_dataclass_type",
    "is_pydantic_model",
    "is_raw",
    "is_struct",
    "is_typeddict",
    "strip_annotated",
    "tag_values",
    "union_members",
]

_RAW: tuple[Any, ...] = (WebSocketMessage, str, bytes, bytearray, memoryview, object, Any)


def strip_annotated(annotation: Any) -> Any:
    """``Annotated[X, ...]`` is ``X``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def union_members(annotation: Any) -> tuple[Any, ...] | None:
    """The members of a union (``A | B``, ``Union[A, B]``), or None when it is not one."""
    annotation = strip_annotated(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(annotation)
    return None


def is_raw(annotation: Any) -> bool:
    """True for what needs no codec: messages, ``str``, ``bytes``, ``Any``, unions of them."""
    members = union_members(annotation)
    if members is not None:
        return all(is_raw(member) or member is type(None) for member in members)
    return any(annotation is raw for raw in _RAW)


def _bases(cls: Any) -> tuple[type, ...]:
    return cls.__mro__ if isinstance(cls, type) else ()


def is_struct(cls: Any) -> bool:
    """A ``msgspec.Struct`` subclass."""
    return any(b.__module__ == "msgspec" and b.__name__ == "Struct" for b in _bases(cls))


def is_pydantic_model(cls: Any) -> bool:
    """A pydantic ``BaseModel`` subclass, or a pydantic dataclass."""
    if getattr(cls, "__pydantic_fields__", None) is not None and isinstance(cls, type):
        return True
    return any(
        b.__module__.startswith("pydantic") and b.__name__ == "BaseModel" for b in _bases(cls)
    )


def is_dataclass_type(cls: Any) -> bool:
    """A dataclass (the class, not an instance)."""
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


def is_typeddict(cls: Any) -> bool:
    """A ``TypedDict`` (from ``typing`` or ``typing_extensions``)."""
    return typing_extensions.is_typeddict(cls)


def tag_values(cls: Any, field: str) -> tuple[Any, ...] | None:
    """The values of ``cls``'s ``field: Literal[...]`` (its tag), or None when it has none.

    A tagged Struct's tag (``tag_field=..., tag=...``) counts too.
    """
    if is_struct(cls):
        config = cls.__struct_config__
        if config.tag_field == field and config.tag is not None:
            return (config.tag,)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        return None
    annotation = strip_annotated(hints.get(field))
    if typing.get_origin(annotation) is typing.Literal:
        return typing.get_args(annotation)
    return None
