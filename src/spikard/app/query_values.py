"""Query-string values converted to the types route parameters declare.

``def search(q: str, limit: int = 10, tags: list[str] | None = None)`` reads ``?q=..``,
``?limit=..`` and repeated ``?tags=..``. A :class:`QueryValue` is built once per parameter at
registration; :meth:`QueryValue.read` turns the raw strings into the value, or into the
errors a 422 reports (``{"loc": ["query", name], "msg": ..., "type": ...}``).

Supported: ``str``, ``int``, ``float``, ``bool``, :class:`enum.Enum` subclasses (by value),
``Literal[...]`` of strings and ints, :class:`uuid.UUID`, :class:`datetime.date` and
:class:`datetime.datetime` (ISO 8601), ``Optional``/``X | None`` of those, and ``list``,
``tuple[X, ...]``, ``Sequence``/``set``/``frozenset`` of those (a repeated parameter).
"""

from __future__ import annotations

import datetime
import enum
import inspect
import typing
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..typed.families import strip_annotated, union_members

__all__ = ["MISSING", "FieldError", "QueryValue", "query_value_for"]

FieldError = dict[str, Any]
"""One failing field: ``{"loc": [...], "msg": "...", "type": "..."}``."""

MISSING: Any = inspect.Parameter.empty


class _Invalid(ValueError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


_TRUE = frozenset({"1", "true", "yes", "on", "t", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "f", "n"})


def _to_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _Invalid("bool_parsing", "Input should be a valid boolean (true/false, 1/0, yes/no)")


def _to_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _Invalid("int_parsing", "Input should be a valid integer") from None


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _Invalid("float_parsing", "Input should be a valid number") from None


def _to_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise _Invalid("uuid_parsing", "Input should be a valid UUID") from None


def _to_date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise _Invalid("date_parsing", "Input should be a valid date (YYYY-MM-DD)") from None


def _to_datetime(text: str) -> datetime.datetime:
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        raise _Invalid("datetime_parsing", "Input should be a valid ISO 8601 datetime") from None


_SCALARS: dict[Any, Callable[[str], Any]] = {
    str: str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    uuid.UUID: _to_uuid,
    datetime.datetime: _to_datetime,
    datetime.date: _to_date,
}

_COLLECTIONS: dict[Any, Callable[[list[Any]], Any]] = {
    list: list,
    Sequence: list,
    tuple: tuple,
    set: set,
    frozenset: frozenset,
}


def _literal(choices: tuple[Any, ...]) -> Callable[[str], Any]:
    by_text = {str(choice): choice for choice in choices}
    expected = ", ".join(repr(c) for c in choices)

    def convert(text: str) -> Any:
        if text in by_text:
            return by_text[text]
        raise _Invalid("literal_error", f"Input should be {expected}")

    return convert


def _enum(cls: type[enum.Enum]) -> Callable[[str], Any]:
    by_text = {str(member.value): member for member in cls}
    expected = ", ".join(repr(str(member.value)) for member in cls)

    def convert(text: str) -> Any:
        if text in by_text:
            return by_text[text]
        raise _Invalid("enum", f"Input should be {expected}")

    return convert


def _scalar(annotation: Any) -> Callable[[str], Any] | None:
    if annotation is Any or annotation is MISSING:
        return str
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        if all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in choices):
            return _literal(choices)
        return None
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum(annotation)
    return None


@dataclass(frozen=True, slots=True)
class QueryValue:
    """How one parameter reads its query-string value(s)."""

    name: str
    convert: Callable[[str], Any]
    collect: Callable[[list[Any]], Any] | None
    """None: one value (the last one given); else how repeated values are gathered."""
    default: Any
    optional: bool
    """``None`` is an accepted value (``X | None``): a missing parameter without a default
    is then None rather than an error."""

    def read(self, values: list[str], errors: list[FieldError]) -> Any:
        """The parameter's value from its raw strings; appends to ``errors`` when invalid."""
        if not values:
            if self.default is not MISSING:
                return self.default
            if self.optional:
                return None
            errors.append({"loc": ["query", self.name], "msg": "Field required", "type": "missing"})
            return None
        if self.collect is None:
            try:
                return self.convert(values[-1])
            except _Invalid as invalid:
                errors.append(
                    {"loc": ["query", self.name], "msg": invalid.message, "type": invalid.kind}
                )
                return None
        converted: list[Any] = []
        for index, text in enumerate(values):
            try:
                converted.append(self.convert(text))
            except _Invalid as invalid:
                errors.append(
                    {
                        "loc": ["query", self.name, index],
                        "msg": invalid.message,
                        "type": invalid.kind,
                    }
                )
        return self.collect(converted)


def query_value_for(name: str, annotation: Any, default: Any) -> QueryValue | None:
    """The reader for a query parameter declared ``name: annotation = default``.

    Returns None when the annotation is not a type a query string can give.
    """
    annotation = strip_annotated(annotation)
    optional = False
    union = union_members(annotation)
    if union is not None:
        members = [a for a in union if a is not type(None)]
        if len(members) != 1:
            return None
        optional = len(members) != len(union)
        annotation = strip_annotated(members[0])
    origin = typing.get_origin(annotation)
    collect: Callable[[list[Any]], Any] | None = None
    if origin in _COLLECTIONS or annotation in _COLLECTIONS:
        collect = _COLLECTIONS[origin if origin in _COLLECTIONS else annotation]
        arguments = typing.get_args(annotation)
        if origin is tuple and not (len(arguments) == 2 and arguments[1] is Ellipsis):
            return None  # fixed-length tuples are not a repeated parameter
        annotation = strip_annotated(arguments[0]) if arguments else str
    convert = _scalar(annotation)
    if convert is None:
        return None
    return QueryValue(name, convert, collect, default, optional)
