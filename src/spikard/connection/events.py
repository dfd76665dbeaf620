"""Events for the loop a connection runs on: :class:`LightEvent` on asyncio, anyio's elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Protocol

__all__ = ["LightEvent", "Waiter"]


class Waiter(Protocol):
    """What the connection layer waits on: ``anyio.Event`` or :class:`LightEvent`."""

    def is_set(self) -> bool:
        """True once set."""

    def set(self) -> None:
        """Set the flag and wake every waiter."""

    def wait(self) -> Awaitable[object]:
        """Return what to await until the flag is set (a coroutine or a future)."""


class _AlreadySet:
    """What :meth:`LightEvent.wait` returns once set: awaiting it gives True at once."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, bool]:
        return True
        yield  # a generator: awaiting it never suspends


_ALREADY_SET = _AlreadySet()
_PRUNE_AT = 8


class LightEvent:
    """``asyncio.Event``'s interface for one event loop, without a waiter deque per instance.

    Every open WebSocket keeps a few events; an ``asyncio.Event`` costs a deque each (about
    600 bytes) and a loop lookup per wait. This one hands each waiter a bare future of the
    loop it was made for (awaited directly, with no coroutine of its own), and may be set
    from a transport callback (outside any task).

    Invariant: :attr:`_waiters` holds the futures of waiters not woken yet, plus at most
    ``_PRUNE_AT`` cancelled ones (they are pruned as new waiters come, and dropped on set).
    """

    __slots__ = ("_is_set", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._is_set = False
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        """True once :meth:`set` was called (and :meth:`clear` not since)."""
        return self._is_set

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if self._is_set:
            return
        self._is_set = True
        waiters, self._waiters = self._waiters, None
        if waiters:
            for waiter in waiters:
                if not waiter.done():  # a cancelled waiter's future is done
                    waiter.set_result(True)

    def clear(self) -> None:
        """Reset the flag."""
        self._is_set = False

    def wait(self) -> Awaitable[bool]:
        """Return what to await until the flag is set; it gives True.

        Not a coroutine: the caller awaits a future of the loop (or, once set, an object that
        completes at once). Cancelling the awaiting task cancels only its own future.
        """
        if self._is_set:
            return _ALREADY_SET
        waiter: asyncio.Future[bool] = self._loop.create_future()
        waiters = self._waiters
        if waiters is None:
            self._waiters = [waiter]
        else:
            if len(waiters) >= _PRUNE_AT:
                waiters[:] = [pending for pending in waiters if not pending.done()]
            waiters.append(waiter)
        return waiter
