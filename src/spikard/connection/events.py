"""Events for the loop a connection runs on: :class:`LightEvent` on asyncio, anyio's elsewhere."""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["LightEvent", "Waiter"]


class Waiter(Protocol):
    """What the connection layer waits on: ``anyio.Event`` or :class:`LightEvent`."""

    def is_set(self) -> bool:
        """True once set."""

    def set(self) -> None:
        """Set the flag and wake every waiter."""

    async def wait(self) -> object:
        """Wait until the flag is set."""


class LightEvent:
    """``asyncio.Event``'s interface for one event loop, without a waiter deque per instance.

    Every open WebSocket keeps a few events; an ``asyncio.Event`` costs a deque each (about
    600 bytes) and a loop lookup per wait. This one waits on a bare future of the loop it was
    made for, and may be set from a transport callback (outside any task).
    """

    __slots__ = ("_is_set", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._is_set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        """True once :meth:`set` was called (and :meth:`clear` not since)."""
        return self._is_set

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if self._is_set:
            return
        self._is_set = True
        if self._waiters:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        """Reset the flag."""
        self._is_set = False

    async def wait(self) -> bool:
        """Wait until the flag is set."""
        if self._is_set:
            return True
        waiter: asyncio.Future[None] = self._loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)
        return True
