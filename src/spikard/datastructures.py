"""Read-only, multi-value mappings for headers and query strings, and a peer address."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple, TypeVar, overload
from urllib.parse import parse_qsl

__all__ = ["Address", "Headers", "QueryParams"]

_D = TypeVar("_D")


class Address(NamedTuple):
    """A peer's network address."""

    host: str
    port: int


class _MultiDict(Mapping[str, str]):
    """Ordered pairs where a key may repeat; ``m[key]`` is the first value."""

    __slots__ = ("_index", "_pairs")

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs = [(self._key(k), k, v) for k, v in pairs]
        self._index: dict[str, str] = {}
        for key, _, value in self._pairs:
            self._index.setdefault(key, value)

    @staticmethod
    def _key(name: str) -> str:
        return name

    def __getitem__(self, key: str) -> str:
        return self._index[self._key(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._key(key) in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | _D) -> str | _D: ...
    def get(self, key: str, /, default: object = None) -> object:
        """Return the first value for ``key``, or ``default``."""
        return self._index.get(self._key(key), default)

    def getlist(self, key: str) -> list[str]:
        """Return every value for ``key`` in order (empty when absent)."""
        wanted = self._key(key)
        return [value for k, _, value in self._pairs if k == wanted]

    def multi_items(self) -> list[tuple[str, str]]:
        """Return every (key, value) pair, repeats included, in order."""
        return [(name, value) for _, name, value in self._pairs]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _MultiDict):
            return sorted(self._norm()) == sorted(other._norm())
        return NotImplemented

    def _norm(self) -> list[tuple[str, str]]:
        return [(k, v) for k, _, v in self._pairs]

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

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from (name, value) byte pairs as h11 delivers them (latin-1 decoded)."""
        return cls((_decode_name(name), value.decode("latin-1")) for name, value in raw)


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
