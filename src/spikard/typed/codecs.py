"""Codecs: a declared message type turned into a JSON decoder and encoder, once.

Which library handles a type is decided when the codec is built (at registration):

- msgspec (the fast path) for Structs, dataclasses, TypedDicts and anything else it knows
  (``dict[str, int]``, ``list[Item]``, ``Literal``, ...); tagged Struct unions natively;
- pydantic v2 for pydantic models (and any type that contains one), through a
  ``TypeAdapter``; a union of models that all have a ``type: Literal[...]`` field is
  validated as a discriminated union on it;
- a union of dataclasses or TypedDicts (which msgspec cannot decode as a union) is read by
  its ``type`` field: the field's value selects the member, and that member's decoder
  reads the message;
- without msgspec, dataclasses and TypedDicts fall back to pydantic;
- plain JSON types (``dict[str, Any]``, ``list[int]``, ...) are written by the stdlib, as
  HTTP routes write them, and read by msgspec; ``dict`` and ``list`` of anything need no
  library at all.

A type whose library is not installed raises :class:`MissingExtra`, naming the extra.
"""

from __future__ import annotations

import functools
import importlib
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .errors import InvalidMessage
from .families import (
    is_dataclass_type,
    is_pydantic_model,
    is_struct,
    is_typeddict,
    strip_annotated,
    tag_values,
    union_members,
)

__all__ = ["TAG_FIELD", "Codec", "MissingExtra", "codec_for"]

TAG_FIELD: Final = "type"
"""The field whose value selects the member of a union of dataclasses or TypedDicts."""

Decode = Callable[[str | bytes], Any]
Encode = Callable[[Any], str]


class MissingExtra(LookupError):
    """The library a message type needs is not installed.

    Attributes:
        extra: the name of spikard's extra that installs it (``"msgspec"``, ``"pydantic"``).
    """

    def __init__(self, message_type: Any, extra: str) -> None:
        self.extra = extra
        super().__init__(
            f"messages of type {describe_type(message_type)} need {extra}: "
            f"pip install -e '.[{extra}]' (spikard's {extra} extra)"
        )


@dataclass(frozen=True, slots=True, eq=False)
class Codec:
    """How messages of one declared type are read and written.

    Attributes:
        type: the declared type, as given.
        library: ``"msgspec"``, ``"pydantic"``, or ``"json"`` (the stdlib: for ``dict`` and
            ``list`` of anything, when msgspec is not installed).
        decode: ``decode(text_or_bytes)`` returns a validated value or raises
            :class:`~spikard.typed.InvalidMessage`.
        encode: ``encode(value)`` returns the JSON text of a value of the type.
    """

    type: Any
    library: str
    decode: Decode
    encode: Encode


def describe_type(message_type: Any) -> str:
    """``ChatIn``, or the repr of a union or a generic alias."""
    if isinstance(message_type, type):
        return message_type.__qualname__
    return repr(message_type).replace("typing.", "")


def _import(module: str, message_type: Any) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(message_type, module) from None


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def _walk(annotation: Any) -> list[Any]:
    """Every type named inside ``annotation`` (union members, generic arguments, ...)."""
    found = [annotation]
    for argument in typing.get_args(annotation):
        if not isinstance(argument, (str, int, float, bool, bytes)) and argument is not None:
            found.extend(_walk(argument))
    return found


# ---- msgspec ----------------------------------------------------------------------------

_MSGSPEC_AT: Final = re.compile(r" - at `\$(.*)`$")
_MSGSPEC_STEP: Final = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]|\[\.\.\.\]")
_MSGSPEC_MISSING: Final = re.compile(r"^Object missing required field `(.*)`$")


def msgspec_errors(text: str) -> list[dict[str, Any]]:
    """The one error message of msgspec as ``[{"loc", "msg", "type"}]``."""
    loc: list[str | int] = []
    found = _MSGSPEC_AT.search(text)
    if found is not None:
        text = text[: found.start()]
        for name, index in _MSGSPEC_STEP.findall(found.group(1)):
            if name or index:
                loc.append(int(index) if index else name)
    missing = _MSGSPEC_MISSING.match(text)
    if missing is not None:
        return [{"loc": [*loc, missing.group(1)], "msg": "Field required", "type": "missing"}]
    kind = "type_error" if text.startswith("Expected") else "value_error"
    return [{"loc": loc, "msg": text, "type": kind}]


def _msgspec_decode(msgspec: Any, decoder: Any) -> Decode:
    validation_error = msgspec.ValidationError
    decode_error = msgspec.DecodeError
    decode = decoder.decode

    def decode_message(data: str | bytes) -> Any:
        try:
            return decode(data)
        except validation_error as exc:  # a DecodeError too: first
            raise InvalidMessage(msgspec_errors(str(exc)), data) from None
        except decode_error as exc:
            raise InvalidMessage(
                [{"loc": [], "msg": str(exc), "type": "json_invalid"}], data
            ) from None

    return decode_message


def _msgspec_encode(msgspec: Any) -> Encode:
    encode = msgspec.json.Encoder().encode

    def encode_message(value: Any) -> str:
        text: str = encode(value).decode()
        return text

    return encode_message


def _tags(members: tuple[Any, ...]) -> dict[Any, Any] | None:
    """``{tag value: member}`` when every member has a ``type`` tag, and no two share one."""
    by_tag: dict[Any, Any] = {}
    for member in members:
        values = tag_values(member, TAG_FIELD)
        if not values:
            return None
        for value in values:
            if value in by_tag:
                return None
            by_tag[value] = member
    return by_tag


def _expected(by_tag: Mapping[Any, Any]) -> str:
    return ", ".join(repr(tag) for tag in by_tag)


def _msgspec_tag_dispatch(msgspec: Any, union: Any, by_tag: dict[Any, Any]) -> Decode:
    """Read the ``type`` field first, then the whole message with that member's decoder."""
    tag_only = msgspec.defstruct("Tag", [(TAG_FIELD, Any)])
    read_tag = _msgspec_decode(msgspec, msgspec.json.Decoder(tag_only))
    decoders = {
        tag: _msgspec_decode(msgspec, msgspec.json.Decoder(member))
        for tag, member in by_tag.items()
    }
    expected = _expected(by_tag)

    def decode_message(data: str | bytes) -> Any:
        tag = getattr(read_tag(data), TAG_FIELD)
        try:
            decode = decoders[tag]
        except (KeyError, TypeError):  # TypeError: an unhashable tag (a list)
            raise InvalidMessage(
                [
                    {
                        "loc": [TAG_FIELD],
                        "msg": f"Input tag {tag!r} found using {TAG_FIELD!r} does not match "
                        f"any of the expected tags: {expected}",
                        "type": "union_tag_invalid",
                    }
                ],
                data,
            ) from None
        return decode(data)

    return decode_message


def _msgspec_codec(message_type: Any) -> Codec:
    msgspec = _import("msgspec", message_type)
    try:
        decode = _msgspec_decode(msgspec, msgspec.json.Decoder(message_type))
    except TypeError as exc:
        members = union_members(message_type)
        by_tag = None if members is None else _tags(members)
        if by_tag is None:
            raise TypeError(
                f"msgspec cannot read {describe_type(message_type)} ({exc}); in a union, give "
                f"every member a {TAG_FIELD}: Literal[...] field (Structs: "
                f"tag_field={TAG_FIELD!r})"
            ) from None
        decode = _msgspec_tag_dispatch(msgspec, message_type, by_tag)
    return Codec(message_type, "msgspec", decode, _msgspec_encode(msgspec))


# ---- pydantic ---------------------------------------------------------------------------


def pydantic_errors(exc: Any) -> list[dict[str, Any]]:
    """A pydantic ``ValidationError`` as ``[{"loc", "msg", "type"}]``."""
    failures = exc.errors(include_url=False, include_context=False, include_input=False)
    return [{"loc": list(f["loc"]), "msg": f["msg"], "type": f["type"]} for f in failures]


def _discriminated(pydantic: Any, message_type: Any) -> Any:
    """A plain union of tagged models, as pydantic's discriminated union on ``type``."""
    if typing.get_origin(message_type) is typing.Annotated:
        return message_type  # the user said how
    members = union_members(message_type)
    if members is None or _tags(members) is None:
        return message_type
    return typing.Annotated[message_type, pydantic.Field(discriminator=TAG_FIELD)]


def _pydantic_codec(message_type: Any) -> Codec:
    pydantic = _import("pydantic", message_type)
    adapter = pydantic.TypeAdapter(_discriminated(pydantic, message_type))
    validate = adapter.validate_json
    dump = adapter.dump_json
    validation_error = pydantic.ValidationError

    def decode_message(data: str | bytes) -> Any:
        try:
            return validate(data)
        except validation_error as exc:
            raise InvalidMessage(pydantic_errors(exc), data) from None

    def encode_message(value: Any) -> str:
        text: str = dump(value).decode()
        return text

    return Codec(message_type, "pydantic", decode_message, encode_message)


# ---- plain JSON ---------------------------------------------------------------------------

_SCALARS: Final = (str, int, float, bool, type(None))


def _plain(annotation: Any) -> bool:
    """Only dicts, lists, tuples, scalars and ``Any``: JSON as the stdlib writes it."""
    if annotation is Any or annotation is None or any(annotation is s for s in _SCALARS):
        return True
    members = union_members(annotation)
    if members is not None:
        return all(_plain(member) for member in members)
    origin = typing.get_origin(annotation) or annotation
    if not any(origin is c for c in (dict, list, tuple)):
        return False
    return all(_plain(argument) or argument is Ellipsis for argument in typing.get_args(annotation))


def _loose(annotation: Any) -> type | None:
    """``dict``, ``list`` (their items ``Any``): checked without a library; else None."""
    origin = typing.get_origin(annotation) or annotation
    arguments = typing.get_args(annotation)
    if any(origin is c for c in (dict, list)) and all(a is Any or a is str for a in arguments):
        return origin if not arguments or arguments[-1] is Any else None
    return None


def _stdlib_codec(message_type: Any, expected: type) -> Codec:
    from .encoding import decode_json, dumps

    def decode_message(data: str | bytes) -> Any:
        value = decode_json(data)
        if not isinstance(value, expected):
            raise InvalidMessage(
                [
                    {
                        "loc": [],
                        "msg": f"Expected `{'object' if expected is dict else 'array'}`, got "
                        f"`{type(value).__name__}`",
                        "type": "type_error",
                    }
                ],
                data,
            )
        return value

    return Codec(message_type, "json", decode_message, dumps)


def _with_plain_encoder(codec: Codec) -> Codec:
    from .encoding import dumps

    return Codec(codec.type, codec.library, codec.decode, dumps)


# ---- choosing ---------------------------------------------------------------------------


def _needs_pydantic(message_type: Any) -> bool:
    named = _walk(message_type)
    if any(is_pydantic_model(t) for t in named):
        return True
    if typing.get_origin(message_type) is typing.Annotated:
        metadata = typing.get_args(message_type)[1:]
        return any(type(m).__module__.startswith("pydantic") for m in metadata)
    return False


def _build(message_type: Any) -> Codec:
    if _plain(message_type):  # written by the stdlib; read by msgspec, which validates
        if _installed("msgspec"):
            return _with_plain_encoder(_msgspec_codec(message_type))
        loose = _loose(message_type)
        if loose is not None:
            return _stdlib_codec(message_type, loose)
    if _needs_pydantic(message_type):
        return _pydantic_codec(message_type)
    named = _walk(strip_annotated(message_type))
    plain = any(is_dataclass_type(t) or is_typeddict(t) for t in named)
    no_msgspec = not any(is_struct(t) for t in named) and not _installed("msgspec")
    if plain and no_msgspec and _installed("pydantic"):  # else the error names msgspec
        return _pydantic_codec(message_type)
    return _msgspec_codec(message_type)


_cached_build = functools.lru_cache(maxsize=256)(_build)


def codec_for(message_type: Any) -> Codec:
    """The codec of ``message_type``, built once per type.

    Raises:
        MissingExtra: the library the type needs is not installed.
        TypeError: no library can read the type (an untagged union of dataclasses, ...).
    """
    try:
        hash(message_type)
    except TypeError:  # Annotated with unhashable metadata: built each time it is asked for
        return _build(message_type)
    return _cached_build(message_type)
