"""Multi-value mappings for headers (request: read-only, response: mutable) and queries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, NamedTuple, TypeVar, overload
from urllib.parse import parse_qsl

__all__ = ["Address", "Headers", "MutableHeaders", "QueryParams", "State"]

_D = TypeVar("_D")


class Address(NamedTuple):
    """A peer's network address."""

    host: str
    port: int


class _MultiDict(Mapping[str, str]):
    """Ordered pairs where a key may repeat; ``m[key]`` is the first value.

    Every open WebSocket keeps its request's headers, so they are stored flat: one tuple of
    ``(key, name, value)`` runs, searched by C-level ``tuple.index`` (requests have a few dozen
    fields at most) instead of a list of tuples plus an index dict.
    """

    __slots__ = ("_items",)

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        key = self._key
        items: list[str] = []
        for name, value in pairs:
            items += (key(name), name, value)
        self._items = tuple(items)

    @staticmethod
    def _key(name: str) -> str:
        return name

    def _find(self, key: str) -> int:
        """The position of ``key``'s first value in :attr:`_items`; -1 when absent."""
        try:
            return self._items[::3].index(key) * 3 + 2
        except ValueError:
            return -1

    def __getitem__(self, key: str) -> str:
        found = self._find(self._key(key))
        if found < 0:
            raise KeyError(key)
        return self._items[found]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._find(self._key(key)) >= 0

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(self._items[::3]))

    def __len__(self) -> int:
        return len(set(self._items[::3]))

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | _D) -> str | _D: ...
    def get(self, key: str, /, default: object = None) -> object:
        """Return the first value for ``key``, or ``default``."""
        found = self._find(self._key(key))
        return default if found < 0 else self._items[found]

    def getlist(self, key: str) -> list[str]:
        """Return every value for ``key`` in order (empty when absent)."""
        wanted = self._key(key)
        items = self._items
        keys = items[::3]
        count = keys.count(wanted)
        if count == 1:  # the common case, found in C
            return [items[keys.index(wanted) * 3 + 2]]
        if count == 0:
            return []
        return [items[i + 2] for i in range(0, len(items), 3) if items[i] == wanted]

    def multi_items(self) -> list[tuple[str, str]]:
        """Return every (key, value) pair, repeats included, in order."""
        items = self._items
        return list(zip(items[1::3], items[2::3], strict=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _MultiDict):
            return sorted(self._norm()) == sorted(other._norm())
        return NotImplemented

    def _norm(self) -> list[tuple[str, str]]:
        items = self._items
        return list(zip(items[0::3], items[2::3], strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.multi_items()!r})"


class Headers(_MultiDict):
    """HTTP headers: case-insensitive names, repeated fields kept in order."""

    __slots__ = ()

    @staticmethod
    def _key(name: str) -> str:
        lowered = _LOWERED_NAMES.get(name)
        if lowered is None:
            lowered = name.lower()
            if len(_LOWERED_NAMES) < _NAME_CACHE_SIZE:
                _LOWERED_NAMES[name] = lowered
        return lowered

    def has_any(self, names: frozenset[str]) -> bool:
        """True when a field is named one of ``names`` (lower-case), in one pass."""
        return not names.isdisjoint(self._items[::3])

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from (name, value) byte pairs as h11 delivers them (latin-1 decoded)."""
        items: list[str] = []
        key = cls._key
        for name, value in raw:
            decoded = _DECODED_NAMES.get(name) or _decode_name(name)
            items += (key(decoded), decoded, value.decode("latin-1"))
        headers = cls.__new__(cls)
        headers._items = tuple(items)
        return headers


_NAME_CACHE_SIZE = 512
"""Header names repeat across requests: every open WebSocket's request shares their strings."""
_DECODED_NAMES: dict[bytes, str] = {}
_LOWERED_NAMES: dict[str, str] = {}


def _decode_name(name: bytes) -> str:
    decoded = _DECODED_NAMES.get(name)
    if decoded is None:
        decoded = name.decode("latin-1")
        if len(_DECODED_NAMES) < _NAME_CACHE_SIZE:
            _DECODED_NAMES[name] = decoded
    return decoded


class QueryParams(_MultiDict):
    """A parsed query string: ``?a=1&a=2`` gives ``params["a"] == "1"`` and ``getlist("a")``."""

    __slots__ = ()

    @classmethod
    def parse(cls, query: str) -> QueryParams:
        """Parse a raw query string (without the ``?``); blank values are kept."""
        return cls(parse_qsl(query, keep_blank_values=True))


HeadersInit = Mapping[str, str] | Iterable[tuple[str, str]] | None
"""What a response takes as headers: a mapping, or (name, value) pairs that may repeat."""


class MutableHeaders(MutableMapping[str, str]):
    """A response's headers: case-insensitive names (kept lower-case), repeats in order.

    Dict-style use sees one value per name: ``headers[name]`` is the first, assigning replaces
    every field of that name, ``del`` removes them all. :meth:`append` adds another field of
    the same name (``Set-Cookie``, ``Vary``, ``Link``), :meth:`getlist` returns them all and
    :meth:`multi_items` every field in order, which is what is sent.
    """

    __slots__ = ("_fields",)

    def __init__(self, headers: HeadersInit = None) -> None:
        self._fields: list[tuple[str, str]] = []
        if headers is None:
            return
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in pairs:
            self.append(name, value)

    def __getitem__(self, name: str) -> str:
        wanted = name.lower()
        for key, value in self._fields:
            if key == wanted:
                return value
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        wanted = name.lower()
        fields = self._fields
        for index, (key, _) in enumerate(fields):
            if key == wanted:
                fields[index] = (wanted, value)
                fields[index + 1 :] = [f for f in fields[index + 1 :] if f[0] != wanted]
                return
        fields.append((wanted, value))

    def __delitem__(self, name: str) -> None:
        wanted = name.lower()
        kept = [field for field in self._fields if field[0] != wanted]
        if len(kept) == len(self._fields):
            raise KeyError(name)
        self._fields = kept

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._fields))

    def __len__(self) -> int:
        return len({key for key, _ in self._fields})

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        wanted = name.lower()
        return any(key == wanted for key, _ in self._fields)

    def append(self, name: str, value: str) -> None:
        """Add a field, after any of the same name."""
        self._fields.append((name.lower(), value))

    def getlist(self, name: str) -> list[str]:
        """Every value of ``name``, in order (empty when absent)."""
        wanted = name.lower()
        return [value for key, value in self._fields if key == wanted]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every (name, value) field, repeats included, in order."""
        return list(self._fields)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._fields!r})"


class State:
    """A namespace for your own objects: ``app.state.db = ...``, ``socket.state.user = ...``.

    ``app.state`` lives as long as the app (set it in an ``on_startup`` hook), a socket's
    ``state`` as long as its connection. Reading an attribute that was never set raises
    :class:`AttributeError` naming it. For static types, subclass it and
    annotate the attributes you set::

        class Shared(State):
            db: Database

        app = Spikard(state=Shared())
    """

    def __init__(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        # Declared so that type checkers accept setting any attribute.
        super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes that were never set.
        raise AttributeError(f"state has no attribute {name!r}; set it first ({name} = ...)")

    def __contains__(self, name: str) -> bool:
        return name in self.__dict__

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"{type(self).__name__}({shown})"
