"""A JSON request body decoded and validated into the model type a route parameter declares.

``def create(item: Item)`` with ``Item`` a msgspec Struct, a pydantic v2 model, a dataclass
or a TypedDict (or a union of them) reads the body as JSON into an ``Item``. msgspec decodes
everything but pydantic models (which pydantic validates); a dataclass or TypedDict falls
back to pydantic when msgspec is not installed. Which library a type needs is decided at
registration, so a missing one is a :class:`~spikard.errors.RoutingError` naming the extra.

Malformed JSON is :class:`~spikard.errors.InvalidBody` (400); a body of the wrong shape is
:class:`~spikard.errors.RequestValidationError` (422) listing each failing field.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from ..errors import InvalidBody, RequestValidationError

__all__ = ["BodyDecoder", "body_decoder_for", "is_model_type", "needed_library"]

BodyDecoder = Callable[[bytes], Any]


def _module_of(cls: type) -> str:
    return getattr(cls, "__module__", "") or ""


def _is_struct(cls: Any) -> bool:
    return isinstance(cls, type) and any(
        base.__module__ == "msgspec" and base.__name__ == "Struct" for base in cls.__mro__
    )


def _is_pydantic_model(cls: Any) -> bool:
    return isinstance(cls, type) and any(
        base.__module__.startswith("pydantic") and base.__name__ == "BaseModel"
        for base in cls.__mro__
    )


def _members(annotation: Any) -> list[Any]:
    """The classes a (possibly Annotated, possibly union) annotation names."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        found: list[Any] = []
        for member in typing.get_args(annotation):
            if member is not type(None):
                found.extend(_members(member))
        return found
    return [annotation]


def _is_model_class(cls: Any) -> bool:
    return (
        _is_struct(cls)
        or _is_pydantic_model(cls)
        or (isinstance(cls, type) and dataclasses.is_dataclass(cls))
        or typing.is_typeddict(cls)
    )


def is_model_type(annotation: Any) -> bool:
    """True when ``annotation`` is a model (or a union of models) read from a JSON body."""
    members = _members(annotation)
    return bool(members) and all(_is_model_class(m) for m in members)


def _installed(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def needed_library(annotation: Any) -> str:
    """``"msgspec"`` or ``"pydantic"``: the library that validates ``annotation``.

    Raises:
        LookupError: it is not installed; the message names the extra to install.
    """
    members = _members(annotation)
    if any(_is_pydantic_model(m) for m in members):
        library = "pydantic"
    elif any(_is_struct(m) for m in members) or _installed("msgspec"):
        library = "msgspec"
    elif _installed("pydantic"):
        library = "pydantic"
    else:
        library = "msgspec"
    if not _installed(library):
        raise LookupError(
            f"validating {_describe(annotation)} needs {library}: "
            f"pip install 'spikard-stream[{library}]' (or pip install -e '.[{library}]')"
        )
    return library


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)


_MSGSPEC_PATH = re.compile(r" - at `\$(.*)`$")
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[(?:'|\")?([^\]'\"]*)(?:'|\")?\]")


def _msgspec_error(message: str) -> list[dict[str, Any]]:
    loc: list[Any] = ["body"]
    match = _MSGSPEC_PATH.search(message)
    if match is not None:
        message = message[: match.start()]
        for name, index, key in _PATH_PART.findall(match.group(1)):
            loc.append(int(index) if index else (name or key))
    kind = "missing" if message.startswith("Object missing required field") else "value_error"
    if message.startswith("Expected"):
        kind = "type_error"
    return [{"loc": loc, "msg": message, "type": kind}]


def _msgspec_decoder(annotation: Any) -> BodyDecoder:
    msgspec = importlib.import_module("msgspec")
    decoder = msgspec.json.Decoder(annotation)
    validation_error = msgspec.ValidationError
    decode_error = msgspec.DecodeError

    def decode(body: bytes) -> Any:
        try:
            return decoder.decode(body)
        except validation_error as exc:  # a subclass of DecodeError: first
            raise RequestValidationError(_msgspec_error(str(exc))) from None
        except decode_error as exc:
            raise InvalidBody(f"Invalid JSON body: {exc}") from None

    return decode


def _pydantic_decoder(annotation: Any) -> BodyDecoder:
    pydantic = importlib.import_module("pydantic")
    adapter = pydantic.TypeAdapter(annotation)
    validation_error = pydantic.ValidationError

    def decode(body: bytes) -> Any:
        try:
            return adapter.validate_json(body)
        except validation_error as exc:
            failures = exc.errors(include_url=False, include_context=False, include_input=False)
            if any(f["type"] == "json_invalid" for f in failures):
                raise InvalidBody(f"Invalid JSON body: {failures[0]['msg']}") from None
            raise RequestValidationError(
                [{"loc": ["body", *f["loc"]], "msg": f["msg"], "type": f["type"]} for f in failures]
            ) from None

    return decode


def body_decoder_for(annotation: Any) -> BodyDecoder:
    """Build the decoder for a body parameter annotated ``annotation`` (a model type).

    Raises:
        LookupError: the library it needs is not installed (the message names the extra).
    """
    library = needed_library(annotation)
    if library == "pydantic":
        return _pydantic_decoder(annotation)
    return _msgspec_decoder(annotation)
