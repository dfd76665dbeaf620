"""A JSON request body decoded and validated into the model type a route parameter declares.

``def create(item: Item)`` with ``Item`` a msgspec Struct, a pydantic v2 model, a dataclass
or a TypedDict (or a union of them) reads the body as JSON into an ``Item``, with the same
codecs typed WebSocket messages use (:func:`spikard.typed.codec_for`: msgspec for all but
pydantic models, built once at registration, so a missing library is a registration error
naming the extra).

Malformed JSON is :class:`~spikard.errors.InvalidBody` (400); a body of the wrong shape is
:class:`~spikard.errors.RequestValidationError` (422) listing each failing field under
``"body"``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InvalidBody, RequestValidationError
from ..typed.codecs import codec_for
from ..typed.errors import InvalidMessage
from ..typed.families import (
    is_dataclass_type,
    is_pydantic_model,
    is_struct,
    is_typeddict,
    strip_annotated,
    union_members,
)

__all__ = ["BodyDecoder", "body_decoder_for", "is_model_type"]

BodyDecoder = Callable[[bytes], Any]


def _is_model_class(cls: Any) -> bool:
    return is_struct(cls) or is_pydantic_model(cls) or is_dataclass_type(cls) or is_typeddict(cls)


def is_model_type(annotation: Any) -> bool:
    """True when ``annotation`` is a model (or a union of models) read from a JSON body."""
    members = union_members(annotation)
    if members is None:
        return _is_model_class(strip_annotated(annotation))
    named = [strip_annotated(m) for m in members if m is not type(None)]
    return bool(named) and all(_is_model_class(m) for m in named)


def body_decoder_for(annotation: Any) -> BodyDecoder:
    """Build the decoder for a body parameter annotated ``annotation`` (a model type).

    Raises:
        LookupError: the library it needs is not installed (``MissingExtra``, naming the extra).
        TypeError: no library can read the type.
    """
    decode = codec_for(annotation).decode

    def decode_body(body: bytes) -> Any:
        try:
            return decode(body)
        except InvalidMessage as invalid:
            errors = invalid.errors
            if any(error.get("type") == "json_invalid" for error in errors):
                raise InvalidBody(f"Invalid JSON body: {errors[0].get('msg', '')}") from None
            raise RequestValidationError(
                [{**error, "loc": ["body", *error.get("loc", ())]} for error in errors]
            ) from None

    return decode_body
