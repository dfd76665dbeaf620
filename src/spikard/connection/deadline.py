"""A move-on-after deadline for one asyncio task, without anyio's scope machinery.

Every connection reads its HTTP request under a deadline. ``anyio.move_on_after`` enters a
cancel scope: a task-state lookup, a clock read and several event-loop lookups (on Python
3.11 each is a ``getpid`` system call), for every connection. :func:`move_on_after` gives
the same block semantics on asyncio with a loop timer that cancels the task, taken back
when the block ends (``Task.uncancel``), as ``asyncio.timeout`` does, but without looking
the loop up. It suits blocks that await plain asyncio futures only: an anyio cancel scope
inside the block would not know about the cancellation. Elsewhere (trio, Python 3.10,
an unknown loop) it is ``anyio.move_on_after``.
"""

from __future__ import annotations

import asyncio
import math
import sys
from types import TracebackType
from typing import Protocol

import anyio

__all__ = ["Deadline", "move_on_after"]


class Deadline(Protocol):
    """What a block under :func:`move_on_after` can do with its deadline (an anyio scope's)."""

    deadline: float
    """When the block is stopped (the event loop's clock); settable."""

    @property
    def cancelled_caught(self) -> bool:
        """True when the deadline (or :meth:`cancel`) stopped the block."""

    def cancel(self) -> None:
        """Stop the block now."""

    def __enter__(self) -> Deadline: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None: ...


class _TimerDeadline:
    __slots__ = ("_cancelling", "_deadline", "_fired", "_handle", "_loop", "_task", "caught")

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self._loop = loop
        self._deadline = deadline
        self._task: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._cancelling = 0
        self._fired = False
        self.caught = False

    @property
    def deadline(self) -> float:
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self._deadline = value
        if self._task is not None and not self._fired:
            self._schedule()

    @property
    def cancelled_caught(self) -> bool:
        return self.caught

    def _schedule(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._deadline != math.inf:
            self._handle = self._loop.call_at(self._deadline, self.cancel)

    def cancel(self) -> None:
        task = self._task
        if task is None or self._fired:
            return  # not in the block (any more), or stopping already
        self._fired = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        task.cancel()

    def __enter__(self) -> _TimerDeadline:
        task = asyncio.current_task(self._loop)  # with the loop given: no lookup
        if task is None:
            raise RuntimeError("move_on_after needs a running task")
        self._task = task
        self._cancelling = task.cancelling()
        self._schedule()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        task, self._task = self._task, None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        # Take our cancellation back; another one (the server's) still propagates.
        if (
            self._fired
            and task is not None
            and task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            self.caught = True
            return True
        return None


_HAS_UNCANCEL = sys.version_info >= (3, 11)


def move_on_after(delay: float, loop: asyncio.AbstractEventLoop | None) -> Deadline:
    """Stop the ``with`` block this deadline guards after ``delay`` seconds.

    ``loop`` is the running asyncio loop, or None (not asyncio): an anyio scope then.
    """
    if loop is None or not _HAS_UNCANCEL:
        return anyio.move_on_after(delay)
    return _TimerDeadline(loop, loop.time() + delay)
