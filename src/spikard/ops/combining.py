"""``zip``: one item of each source at a time, on asyncio and trio, like ``merge``.

``zip`` is an async context manager, as :func:`~spikard.merge` is: its sources are read by
tasks, and the block is their scope. Each round asks every source for one item at once
(nothing is read ahead) and yields them as a tuple when all have one. The zip ends when a
source ends, so with the socket among the sources it ends when the client leaves. Leaving
the block cancels the reads still pending and closes every source that has ``aclose()``
(shielded, bounded); a :class:`~spikard.WebSocket` is left to its session. An exception of a
source is raised, as itself, by the ``async for``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar, overload

import anyio

from ..pubsub import merge
from ..pubsub.merge import ContextOnly
from ._core import MISSING, Pump

__all__ = ["Zipped", "merge", "zip"]

_T = TypeVar("_T")
_T1 = TypeVar("_T1")
_T2 = TypeVar("_T2")
_T3 = TypeVar("_T3")


class Zipped(Generic[_T]):
    """The async iterator a ``zip`` block yields: tuples, one item of each source."""

    def __init__(self, pumps: list[Pump[Any]]) -> None:
        self._pumps = pumps
        self._partial: list[Any] = []
        self._done = False

    def __aiter__(self) -> Zipped[_T]:
        return self

    async def __anext__(self) -> _T:
        if self._done:
            raise StopAsyncIteration
        pumps = self._pumps
        partial = self._partial  # kept across a cancelled call: nothing taken is lost
        try:
            for pump in pumps[len(partial) :]:
                pump.request()
            while len(partial) < len(pumps):
                pump = pumps[len(partial)]
                value = pump.take()
                if value is MISSING:
                    await pump.wait()
                    continue
                partial.append(value)
        except Exception:
            self._done = True
            raise
        self._partial = []
        return tuple(partial)  # type: ignore[return-value]


@asynccontextmanager
async def _zipped(sources: tuple[AsyncIterable[Any], ...]) -> AsyncIterator[Zipped[Any]]:
    pumps = [Pump(source) for source in sources]
    error: BaseException | None = None
    async with anyio.create_task_group() as task_group:
        for pump in pumps:
            pump.mark_started()
            task_group.start_soon(pump.run, name="spikard.ops zip")
        try:
            yield Zipped(pumps)
        except BaseException as exc:
            if isinstance(exc, anyio.get_cancelled_exc_class()):
                raise
            error = exc  # raised outside the task group: as itself, not in a group
        finally:
            task_group.cancel_scope.cancel()
    if error is not None:
        raise error


class _Zip(ContextOnly["Zipped[_T]"]):
    """What ``zip()`` returns: use it with ``async with``."""

    def __init__(self, sources: tuple[AsyncIterable[Any], ...]) -> None:
        super().__init__(
            _zipped(sources),
            "zip() is an async context manager: write "
            "`async with zip(a, b) as pairs: async for a_item, b_item in pairs: ...`",
        )


@overload
def zip(source: AsyncIterable[_T1], /) -> _Zip[tuple[_T1]]: ...
@overload
def zip(source1: AsyncIterable[_T1], source2: AsyncIterable[_T2], /) -> _Zip[tuple[_T1, _T2]]: ...
@overload
def zip(
    source1: AsyncIterable[_T1], source2: AsyncIterable[_T2], source3: AsyncIterable[_T3], /
) -> _Zip[tuple[_T1, _T2, _T3]]: ...
@overload
def zip(*sources: AsyncIterable[Any]) -> _Zip[tuple[Any, ...]]: ...
def zip(*sources: AsyncIterable[Any]) -> _Zip[tuple[Any, ...]]:
    """Pair up the items of async iterables, inside an ``async with`` block.

    ::

        async with ops.zip(socket, prices()) as pairs:
            async for message, price in pairs:
                yield f"{message.as_text()} @ {price}"

    Args:
        *sources: the async iterables to read, one item of each per tuple.

    Returns:
        An async context manager yielding the zipped async iterator; it ends when a source
        ends. Leaving the block cancels pending reads and closes sources with ``aclose()``.

    Raises:
        ValueError: no source was given.
    """
    if not sources:
        raise ValueError("zip() needs at least one source")
    return _Zip(sources)
