"""The bounded queue between a connection's reader and its stream handler."""

from __future__ import annotations

from collections import deque
from typing import Generic, NamedTuple, TypeVar

import anyio

__all__ = ["MessageQueue", "QueueStatistics"]

_T = TypeVar("_T")


class QueueStatistics(NamedTuple):
    """A snapshot of a :class:`MessageQueue`."""

    current_buffer_used: int
    max_buffer_size: int


class MessageQueue(Generic[_T]):
    """A bounded FIFO for one producer and any number of consumers.

    anyio's memory object streams take a checkpoint (an event-loop cycle) on every send and
    every receive, even when the item can be handed over at once; on the hot path of every
    message that doubles the number of loop cycles. This queue waits only when it must: a
    producer when the queue is full (that wait is the backpressure), a consumer when it is
    empty. Closing wakes everyone: producers then raise ``ClosedResourceError`` and consumers,
    once the queue is drained, ``EndOfStream``.
    """

    __slots__ = ("_closed", "_items", "_max_size", "_not_empty", "_not_full")

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._items: deque[_T] = deque()
        self._max_size = max_size
        self._closed = False
        self._not_empty: anyio.Event | None = None
        self._not_full: anyio.Event | None = None

    async def put(self, item: _T) -> None:
        """Append ``item``, waiting while the queue is full.

        Raises:
            anyio.ClosedResourceError: the queue was closed.
        """
        while len(self._items) >= self._max_size and not self._closed:
            if self._not_full is None:
                self._not_full = anyio.Event()
            await self._not_full.wait()
        if self._closed:
            raise anyio.ClosedResourceError
        self._items.append(item)
        if self._not_empty is not None:
            self._not_empty.set()
            self._not_empty = None

    async def get(self) -> _T:
        """Remove and return the oldest item, waiting while the queue is empty.

        Raises:
            anyio.EndOfStream: the queue is closed and drained.
        """
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            if self._not_empty is None:
                self._not_empty = anyio.Event()
            await self._not_empty.wait()
        item = self._items.popleft()
        if self._not_full is not None:
            self._not_full.set()
            self._not_full = None
        return item

    def close(self) -> None:
        """End the queue: no more items; consumers get what is left, then EndOfStream."""
        self._closed = True
        for event in (self._not_empty, self._not_full):
            if event is not None:
                event.set()
        self._not_empty = self._not_full = None

    def discard(self) -> None:
        """Close the queue and drop what it holds (the consumer is gone)."""
        self.close()
        self._items.clear()

    def statistics(self) -> QueueStatistics:
        """How full the queue is."""
        return QueueStatistics(len(self._items), self._max_size)
