"""The bounded queue between a connection's reader and its stream handler."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

import anyio

from ..connection.transport import LightEvent

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

    It is small, as every open WebSocket has one: the items are a list (the queue is bounded,
    so taking from its front is cheap), and on asyncio a wait is a bare future rather than an
    event with a waiter queue of its own.
    """

    __slots__ = (
        "_closed",
        "_items",
        "_loop",
        "_max_size",
        "_not_empty",
        "_not_full",
        "_on_room",
    )

    def __init__(self, max_size: int, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._items: list[_T] = []
        self._max_size = max_size
        self._closed = False
        self._not_empty: _Waiter | None = None
        self._not_full: _Waiter | None = None
        self._on_room: Callable[[], None] | None = None
        self._loop = loop or _running_asyncio_loop()  # None on trio: anyio events

    def _waiter(self) -> _Waiter:
        if self._loop is not None:
            return LightEvent(self._loop)
        return anyio.Event()

    async def put(self, item: _T) -> None:
        """Append ``item``, waiting while the queue is full.

        Raises:
            anyio.ClosedResourceError: the queue was closed.
        """
        while len(self._items) >= self._max_size and not self._closed:
            if self._not_full is None:
                self._not_full = self._waiter()
            await self._not_full.wait()
        if self._closed:
            raise anyio.ClosedResourceError
        self._items.append(item)
        if self._not_empty is not None:
            self._not_empty.set()
            self._not_empty = None

    def try_put(self, item: _T) -> bool:
        """Append ``item`` if there is room now; False when the caller must :meth:`put`.

        Raises:
            anyio.ClosedResourceError: the queue was closed.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        if len(self._items) >= self._max_size:
            return False
        self._items.append(item)
        if self._not_empty is not None:
            self._not_empty.set()
            self._not_empty = None
        return True

    async def get(self) -> _T:
        """Remove and return the oldest item, waiting while the queue is empty.

        Raises:
            anyio.EndOfStream: the queue is closed and drained.
        """
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            if self._not_empty is None:
                self._not_empty = self._waiter()
            await self._not_empty.wait()
        return self.take()

    def take(self) -> _T:
        """Remove and return the oldest item now; only when :attr:`has_items` is True."""
        item = self._items.pop(0)
        if self._not_full is not None:
            self._not_full.set()
            self._not_full = None
        if self._on_room is not None:
            self._wake_producer()
        return item

    def call_when_room(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, synchronously, when an item is taken or the queue closes.

        For a producer that does not wait in :meth:`put` (it runs in transport callbacks):
        after :meth:`try_put` returned False it asks to be called back instead.
        """
        self._on_room = callback
        if self._closed:
            self._wake_producer()

    def _wake_producer(self) -> None:
        callback, self._on_room = self._on_room, None
        if callback is not None:
            callback()

    def close(self) -> None:
        """End the queue: no more items; consumers get what is left, then EndOfStream."""
        self._closed = True
        for event in (self._not_empty, self._not_full):
            if event is not None:
                event.set()
        self._not_empty = self._not_full = None
        if self._on_room is not None:
            self._wake_producer()

    def discard(self) -> None:
        """Close the queue and drop what it holds (the consumer is gone)."""
        self.close()
        self._items.clear()

    @property
    def has_items(self) -> bool:
        """True when a :meth:`get` would return at once."""
        return bool(self._items)

    def statistics(self) -> QueueStatistics:
        """How full the queue is."""
        return QueueStatistics(len(self._items), self._max_size)


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


_Waiter = anyio.Event | LightEvent
