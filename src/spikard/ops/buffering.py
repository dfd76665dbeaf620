"""``buffer``: read ahead up to ``size`` items, with the broker's slow-consumer policies.

A pump task pulls the source into a queue of at most ``size`` items while the consumer is
busy. When the queue is full:

``"block"``
    the pump waits for room, so the source is paused (backpressure, ``size`` items ahead).
``"drop_oldest"``
    the oldest queued item is discarded for the new one: the consumer gets the freshest
    ``size`` items, and the source is never paused.
``"drop_newest"``
    the new item is discarded: the consumer gets what was queued first.

Discarded items are counted in ``dropped``. At the end of the source the queued items are
still delivered; an error of the source is raised after them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from typing import Literal, TypeVar, get_args

import anyio

from ._core import (
    Operator,
    Stage,
    check_count,
    close_quietly,
    manage_in_this_task,
)

__all__ = ["Buffer", "BufferPolicy", "BufferStage", "buffer"]

_T = TypeVar("_T")

BufferPolicy = Literal["block", "drop_oldest", "drop_newest"]
"""What ``buffer`` does with a new item when its queue is full."""


class BufferStage(Stage[_T]):
    """``source | buffer(size, policy)``: the source's items, read ahead."""

    def __init__(self, source: AsyncIterable[_T], operator: Buffer) -> None:
        super().__init__()
        self._source = source
        self._size = operator.size
        self._policy = operator.policy
        self._items: deque[_T] = deque()
        self._final: BaseException | None = None
        self._started = False
        self._space: anyio.Event | None = None
        self._ready: anyio.Event | None = None
        self.dropped = 0
        """Items discarded by a ``drop_*`` policy."""

    def __len__(self) -> int:
        return len(self._items)

    def _wake_consumer(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.set()

    async def _pump(self) -> None:
        items = self._items
        size = self._size
        block = self._policy == "block"
        iterator: AsyncIterator[_T] | None = None
        try:
            iterator = aiter(self._source)
            manage_in_this_task(iterator)
            while True:
                if block:
                    while len(items) >= size:
                        self._space = anyio.Event()
                        await self._space.wait()
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    self._final = StopAsyncIteration()
                    return
                if len(items) >= size:
                    self.dropped += 1
                    if self._policy == "drop_newest":
                        continue
                    items.popleft()
                items.append(item)
                self._wake_consumer()
        except Exception as exc:
            self._final = exc
        finally:
            if self._final is None:
                self._final = StopAsyncIteration()
            self._wake_consumer()
            await close_quietly(iterator if iterator is not None else self._source)

    async def _next(self) -> _T:
        if not self._started:
            await self._prepare()
        items = self._items
        while True:
            if items:
                item = items.popleft()
                space, self._space = self._space, None
                if space is not None:
                    space.set()
                return item
            final = self._final
            if final is not None:
                if isinstance(final, StopAsyncIteration):
                    raise StopAsyncIteration
                raise final
            self._ready = ready = self._ready or anyio.Event()
            await ready.wait()

    async def _prepare(self) -> None:
        if not self._started:
            self._started = True
            await self._start(self._pump, "spikard.ops buffer")

    async def _close_source(self) -> None:
        if not self._started:
            await close_quietly(self._source)


class Buffer(Operator):
    """The operator :func:`buffer` returns."""

    __slots__ = ("policy", "size")

    def __init__(self, size: int, policy: BufferPolicy) -> None:
        self.size = check_count("size", size)
        if policy not in get_args(BufferPolicy):
            raise ValueError(
                f"unknown buffer policy {policy!r}: use 'block', 'drop_oldest' or 'drop_newest'"
            )
        self.policy: BufferPolicy = policy

    def __call__(self, source: AsyncIterable[_T]) -> BufferStage[_T]:
        """Apply the operator: the same as ``source | operator``."""
        return self._apply(source)

    def __ror__(self, source: AsyncIterable[_T]) -> BufferStage[_T]:
        return self._apply(source)

    def _apply(self, source: AsyncIterable[_T]) -> BufferStage[_T]:
        return BufferStage(source, self)

    def __repr__(self) -> str:
        return f"buffer({self.size}, policy={self.policy!r})"


def buffer(size: int, policy: BufferPolicy = "block") -> Buffer:
    """Read up to ``size`` items ahead of the consumer; ``policy`` says what a full queue does.

    ::

        async with aclosing(feed | ops.buffer(100, "drop_oldest")) as updates:
            async for update in updates:     # a slow client skips stale updates
                yield update

    Args:
        size: the most items queued, at least 1.
        policy: ``"block"`` (pause the source), ``"drop_oldest"`` or ``"drop_newest"``.
    """
    return Buffer(size, policy)
