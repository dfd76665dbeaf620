"""JSON without a declared type: the stdlib ``json`` module, plus typed values by their library.

Plain values (dicts, lists, strings, numbers, booleans, None) are written by the stdlib
exactly as HTTP routes write them (compact separators, UTF-8 rather than escapes),
except that NaN and infinity are refused: they are not JSON, and a browser's ``JSON.parse``
rejects them. A msgspec Struct or a dataclass is encoded by msgspec (the stdlib, field by
field, when msgspec is not installed), a pydantic model by its ``model_dump_json()``; inside a
dict or a list they are converted field by field.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, Final

from ..messages import MessageType, WebSocketMessage, new_message
from .errors import InvalidMessage
from .families import is_pydantic_model, is_struct

__all__ = ["coerce_message", "decode_json", "dumps", "encode_value"]

_CACHE_LIMIT: Final = 1024


def _fields_of(value: Any) -> Any:
    """The ``default`` hook of :func:`json.dumps`: typed values inside plain ones."""
    cls = type(value)
    if is_struct(cls):
        try:
            import msgspec
        except ImportError:  # blocked: its fields, and its tag when it has one
            config = cls.__struct_config__
            fields = {name: getattr(value, name) for name in cls.__struct_fields__}
            return {config.tag_field: config.tag, **fields} if config.tag_field else fields
        return msgspec.to_builtins(value)  # renames, tags and nested types as msgspec writes
    if is_pydantic_model(cls) and hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    raise TypeError(f"Object of type {cls.__name__} is not JSON serializable")


_encoder = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_fields_of
)

dumps: Callable[[Any], str] = _encoder.encode
"""``dumps(value)``: compact JSON text; typed values inside are converted by their fields."""


def _msgspec_encoder() -> Callable[[Any], str]:
    """The encoder of msgspec when it is installed (the fast path), else the stdlib's."""
    try:
        import msgspec
    except ImportError:  # a Struct whose library is blocked: field by field
        return dumps
    encode = msgspec.json.Encoder().encode

    def encode_fast(value: Any) -> str:
        try:
            return encode(value).decode()
        except TypeError:  # a field msgspec does not know (a pydantic model): field by field
            return dumps(value)

    return encode_fast


def _model_json(value: Any) -> str:
    text: str = value.model_dump_json()
    return text


def _encoder_for(cls: type) -> Callable[[Any], str] | None:
    if cls is dict or cls is list or cls is tuple:
        return dumps
    if is_pydantic_model(cls) and hasattr(cls, "model_dump_json"):
        return _model_json
    if is_struct(cls) or dataclasses.is_dataclass(cls):
        return _msgspec_encoder()
    if issubclass(cls, (dict, list, tuple)):
        return dumps
    return None


_by_type: dict[type, Callable[[Any], str] | None] = {}


def encode_value(value: object) -> str | None:
    """The JSON text of a dict, list, Struct, pydantic model or dataclass; None for others."""
    cls = type(value)
    try:
        encode = _by_type[cls]
    except KeyError:
        encode = _encoder_for(cls)
        if len(_by_type) < _CACHE_LIMIT:  # classes made at run time must not grow it forever
            _by_type[cls] = encode
    return None if encode is None else encode(value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(data: str | bytes) -> Any:
    """Decode one JSON document (text, or UTF-8 bytes); NaN and Infinity are refused.

    Raises:
        InvalidMessage: it is not JSON (``type`` ``"json_invalid"``).
    """
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidMessage(
            [{"loc": [], "msg": f"Invalid JSON: {reason}", "type": "json_invalid"}], data
        ) from None


def coerce_message(item: object) -> WebSocketMessage:
    """Turn a handler's outgoing item into a message.

    Messages are sent as they are, ``str`` as text and ``bytes`` as binary; a dict, a list,
    a msgspec Struct, a pydantic model or a dataclass as JSON text (as an HTTP route
    returns a dict as JSON).

    Raises:
        TypeError: the item is none of those.
        ValueError: it holds what JSON cannot carry (NaN, infinity).
    """
    if isinstance(item, WebSocketMessage):
        return item
    if isinstance(item, str):
        return new_message(MessageType.TEXT, item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return new_message(MessageType.BINARY, item if type(item) is bytes else bytes(item))
    text = encode_value(item)
    if text is not None:
        return new_message(MessageType.TEXT, text)
    raise TypeError(
        f"a WebSocket handler produced {type(item).__name__!r}; send WebSocketMessage, str or "
        "bytes, or for JSON a dict, a list, a Struct, a pydantic model or a dataclass"
    )
