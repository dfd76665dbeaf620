"""``map`` and ``filter``: one item at a time, with a sync or an async function.

Unlike aiostream's, both take an ``async def`` function on trio too. The function runs in
the consumer's task, one item at a time; for concurrent work use ``map_concurrent``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, Generic, TypeVar, cast, overload

from ._clock import SYSTEM_CLOCK
from ._core import Stage, Upstream

__all__ = ["Filter", "Map", "filter", "map"]

_A = TypeVar("_A")
_B = TypeVar("_B")


def is_async_callable(function: object) -> bool:
    """True for an ``async def`` function (or an object whose ``__call__`` is one)."""
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 (the method itself is what matters)
    )


class MapStage(Stage[_B]):
    """``source | map(f)``: ``f(item)`` for every item."""

    def __init__(
        self, source: AsyncIterable[_A], function: Callable[[_A], Any], is_async: bool
    ) -> None:
        super().__init__()
        self._function = function
        self._is_async = is_async
        # An async function cannot be stopped halfway without losing its item: a stage
        # downstream that waits with a deadline pumps this one instead.
        self._cancel_safe_itself = not is_async
        self._upstream = Upstream(source, self, SYSTEM_CLOCK, deadlines=False)

    async def _next(self) -> _B:
        result = self._function(await self._upstream.pull())
        if self._is_async:
            result = await result
        return cast(_B, result)

    async def _close_source(self) -> None:
        await self._upstream.aclose()


class FilterStage(Stage[_A]):
    """``source | filter(f)``: the items for which ``f(item)`` is true."""

    def __init__(
        self, source: AsyncIterable[_A], predicate: Callable[[_A], Any], is_async: bool
    ) -> None:
        super().__init__()
        self._predicate = predicate
        self._is_async = is_async
        self._cancel_safe_itself = not is_async
        self._upstream = Upstream(source, self, SYSTEM_CLOCK, deadlines=False)

    async def _next(self) -> _A:
        while True:
            item = await self._upstream.pull()
            keep = self._predicate(item)
            if self._is_async:
                keep = await keep
            if keep:
                return item

    async def _close_source(self) -> None:
        await self._upstream.aclose()


class Map(Generic[_A, _B]):
    """The operator :func:`map` returns."""

    __slots__ = ("_function", "_is_async")

    def __init__(self, function: Callable[[_A], Any]) -> None:
        if not callable(function):
            raise TypeError(f"map() needs a callable, not {type(function).__name__}")
        self._function = function
        self._is_async = is_async_callable(function)

    def __call__(self, source: AsyncIterable[_A]) -> MapStage[_B]:
        """Apply the operator: the same as ``source | operator``."""
        return MapStage(source, self._function, self._is_async)

    def __ror__(self, source: AsyncIterable[_A]) -> MapStage[_B]:
        return MapStage(source, self._function, self._is_async)

    def __repr__(self) -> str:
        return f"map({self._function!r})"


class Filter(Generic[_A]):
    """The operator :func:`filter` returns."""

    __slots__ = ("_is_async", "_predicate")

    def __init__(self, predicate: Callable[[_A], Any]) -> None:
        if not callable(predicate):
            raise TypeError(f"filter() needs a callable, not {type(predicate).__name__}")
        self._predicate = predicate
        self._is_async = is_async_callable(predicate)

    def __call__(self, source: AsyncIterable[_A]) -> FilterStage[_A]:
        """Apply the operator: the same as ``source | operator``."""
        return FilterStage(source, self._predicate, self._is_async)

    def __ror__(self, source: AsyncIterable[_A]) -> FilterStage[_A]:
        return FilterStage(source, self._predicate, self._is_async)

    def __repr__(self) -> str:
        return f"filter({self._predicate!r})"


@overload
def map(function: Callable[[_A], Awaitable[_B]], /) -> Map[_A, _B]: ...
@overload
def map(function: Callable[[_A], _B], /) -> Map[_A, _B]: ...
def map(function: Callable[[_A], Any], /) -> Map[_A, Any]:
    """Apply ``function`` to every item, in order (an ``async def`` function is awaited).

    ::

        return socket | ops.map(lambda message: message.as_text().upper())
    """
    return Map(function)


@overload
def filter(predicate: Callable[[_A], Awaitable[object]], /) -> Filter[_A]: ...
@overload
def filter(predicate: Callable[[_A], object], /) -> Filter[_A]: ...
def filter(predicate: Callable[[_A], Any], /) -> Filter[_A]:
    """Keep the items for which ``predicate`` is true (an ``async def`` one is awaited)."""
    return Filter(predicate)
