"""The bounded queue of received messages between a connection and the application."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, NamedTuple, TypeVar

import anyio

from .events import Waiter

__all__ = ["MessageQueue", "QueueStatistics"]

_T = TypeVar("_T")


class QueueStatistics(NamedTuple):
    """A snapshot of a :class:`MessageQueue`."""

    current_buffer_used: int
    max_buffer_size: int


class MessageQueue(Generic[_T]):
    """A bounded FIFO filled synchronously (from a driver) and read by any number of tasks.

    The producer never waits: it asks :attr:`has_room` and :meth:`put_nowait`s (a full queue is
    the producer's cue to stop reading). A consumer waits in :meth:`get` only when the queue is
    empty, and takes an item without any wait otherwise. :meth:`close` wakes every consumer;
    once the queue is drained they get ``EndOfStream``.

    Args:
        max_size: most items held.
        new_event: makes the event a consumer waits on (of the connection's event loop).
    """

    __slots__ = ("_closed", "_items", "_max_size", "_new_event", "_not_empty")

    def __init__(self, max_size: int, new_event: Callable[[], Waiter] = anyio.Event) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self._items: deque[_T] = deque()
        self._max_size = max_size
        self._closed = False
        self._not_empty: Waiter | None = None
        self._new_event = new_event

    @property
    def items(self) -> deque[_T]:
        """The queued items, oldest first: the owner may ``popleft()`` one it takes."""
        return self._items

    @property
    def has_room(self) -> bool:
        """True while the queue holds fewer than ``max_size`` items."""
        return len(self._items) < self._max_size

    @property
    def room(self) -> int:
        """How many more items fit."""
        return self._max_size - len(self._items)

    @property
    def has_items(self) -> bool:
        """True when :meth:`get` would return at once."""
        return bool(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def put_nowait(self, item: _T) -> None:
        """Append ``item`` (even beyond ``max_size``: the producer checks :attr:`has_room`).

        Raises:
            anyio.ClosedResourceError: the queue was closed.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        self._items.append(item)
        waiter = self._not_empty
        if waiter is not None:
            self._not_empty = None
            waiter.set()

    def notify(self) -> None:
        """Wake the consumers: the owner appended to :attr:`items` directly."""
        waiter = self._not_empty
        if waiter is not None:
            self._not_empty = None
            waiter.set()

    def changed(self) -> Awaitable[object]:
        """Return what to await until the next :meth:`put_nowait`, :meth:`notify` or close.

        For an owner that takes from :attr:`items` itself (no coroutine frame of the
        queue's per wait); :meth:`get` is the general way.
        """
        waiter = self._not_empty
        if waiter is None:
            waiter = self._not_empty = self._new_event()
        return waiter.wait()

    async def get(self) -> _T:
        """Remove and return the oldest item, waiting while the queue is empty.

        Raises:
            anyio.EndOfStream: the queue is closed and drained.
        """
        while not self._items:
            if self._closed:
                raise anyio.EndOfStream
            waiter = self._not_empty
            if waiter is None:
                waiter = self._not_empty = self._new_event()
            await waiter.wait()
        return self._items.popleft()

    def take(self) -> _T:
        """Remove and return the oldest item now; only when :attr:`has_items` is True."""
        return self._items.popleft()

    def close(self) -> None:
        """End the queue: no more items; consumers get what is left, then EndOfStream."""
        self._closed = True
        waiter, self._not_empty = self._not_empty, None
        if waiter is not None:
            waiter.set()

    def discard(self) -> None:
        """Close the queue and drop what it holds (nobody will read it)."""
        self.close()
        self._items.clear()

    def statistics(self) -> QueueStatistics:
        """How full the queue is."""
        return QueueStatistics(len(self._items), self._max_size)
