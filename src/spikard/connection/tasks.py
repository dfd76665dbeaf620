"""A task group made lighter on asyncio, for the tasks started once per connection.

Each connection has a task, and each stream session runs its connection's reader next to
the handler. An anyio task group wraps every task in a task handle, a cancel scope and an
event, and each call into them costs a clock or loop lookup: on a server that opens
thousands of connections a second, that is a measurable share of each. On asyncio a
:class:`LightTaskGroup` therefore runs its tasks as plain asyncio tasks, each in its own
anyio cancel scope (so cancelling them respects shields), with an anyio task group's contract:
leaving the ``async with`` block waits for them all, an exception in the block (or its
cancellation) cancels them, and a task's error cancels the rest; every error of the tasks
(and of the block) is raised at the end in one ``ExceptionGroup``, as anyio's task groups
raise on every backend. Elsewhere (trio) it is an anyio task group.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["LightTaskGroup"]


def _cancelling(task: asyncio.Task[Any]) -> bool:
    """True when ``task`` is being cancelled already (always False before Python 3.11)."""
    cancelling = getattr(task, "cancelling", None)
    return cancelling is not None and cancelling() > 0


class LightTaskGroup:
    """``async with LightTaskGroup() as tasks: tasks.start_soon(...)``; see the module docs."""

    __slots__ = ("_done", "_errors", "_group", "_loop", "_tasks")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None  # trio: an anyio task group
        self._loop = loop
        self._group: anyio.abc.TaskGroup | None = None
        self._tasks: dict[asyncio.Task[Any], anyio.CancelScope | None] = {}
        """Each task and its cancel scope, made by the task itself once it runs."""
        self._done: asyncio.Future[None] | None = None
        self._errors: list[BaseException] = []

    async def __aenter__(self) -> LightTaskGroup:
        if self._loop is None:
            self._group = anyio.create_task_group()
            await self._group.__aenter__()
        return self

    def start_soon(
        self, func: Callable[..., Coroutine[Any, Any, Any]], /, *args: Any, name: object = None
    ) -> None:
        """Start ``func(*args)`` as a task of this session."""
        if self._group is not None:
            self._group.start_soon(func, *args, name=name)
            return
        assert self._loop is not None
        # No anyio object is made here: this may run in a transport callback, outside any
        # task, where anyio cannot tell which event loop it is on.
        task = self._loop.create_task(
            self._run(func, args), name=None if name is None else str(name)
        )
        self._tasks[task] = None
        task.add_done_callback(self._task_done)

    def start_soon_unshielded(
        self, func: Callable[..., Coroutine[Any, Any, Any]], /, *args: Any, name: object = None
    ) -> None:
        """Like :meth:`start_soon`, for a task that may be cancelled with ``Task.cancel()``.

        On asyncio such a task gets no cancel scope of its own (two scope transitions and a
        task lookup fewer): :meth:`cancel` cancels it with ``Task.cancel()``, and not again
        once it is being cancelled (by anyone), so the cleanup that cancellation starts
        runs to its end; an anyio shield inside the task does not hold against that first
        cancellation.
        """
        if self._group is not None:
            self._group.start_soon(func, *args, name=name)
            return
        assert self._loop is not None
        task = self._loop.create_task(func(*args), name=None if name is None else str(name))
        self._tasks[task] = None
        task.add_done_callback(self._task_done)

    def start_soon_scoped(
        self, func: Callable[..., Coroutine[Any, Any, Any]], /, *args: Any, name: object = None
    ) -> None:
        """Like :meth:`start_soon`; ``func(scope, *args)`` gets the task's own cancel scope.

        Cancelling that scope stops this task only (its shields respected); the task needs
        no scope of its own for that.
        """
        if self._group is not None:
            self._group.start_soon(_in_scope, func, args, name=name)
            return
        assert self._loop is not None
        task = self._loop.create_task(
            self._run(func, args, True), name=None if name is None else str(name)
        )
        self._tasks[task] = None
        task.add_done_callback(self._task_done)

    async def _run(
        self,
        func: Callable[..., Coroutine[Any, Any, Any]],
        args: tuple[Any, ...],
        pass_scope: bool = False,
    ) -> None:
        task = asyncio.current_task(self._loop)  # with the loop given: no loop lookup
        assert task is not None
        with anyio.CancelScope() as scope:
            self._tasks[task] = scope
            if pass_scope:
                await func(scope, *args)
            else:
                await func(*args)

    def cancel(self) -> None:
        """Cancel every task of the session that is still running (shields are respected)."""
        if self._group is not None:
            self._group.cancel_scope.cancel()
            return
        for task, scope in self._tasks.items():
            if scope is None:
                # Not started, or unshielded: Task.cancel(), once. A second one would land in
                # the cleanup the first one started (shielded there or not).
                if not _cancelling(task):
                    task.cancel()
            else:
                scope.cancel()

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        del self._tasks[task]
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                if not self._errors:
                    self.cancel()
                self._errors.append(error)
        if not self._tasks and self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        if self._group is not None:
            return await self._group.__aexit__(exc_type, exc, traceback)
        if exc is not None:
            self.cancel()
        cancelled = False
        while self._tasks:
            assert self._loop is not None
            self._done = self._loop.create_future()
            try:
                await self._done
            except asyncio.CancelledError:
                # The session itself is being cancelled: its tasks go too, but they are
                # still awaited, as a task group would.
                cancelled = True
                self.cancel()
        errors = self._errors
        if exc is not None and not isinstance(exc, asyncio.CancelledError):
            errors = [exc, *errors]
        if errors:
            raise BaseExceptionGroup("unhandled errors in a task group", errors) from None
        if cancelled and exc is None:
            raise asyncio.CancelledError
        return None


async def _in_scope(func: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]) -> None:
    with anyio.CancelScope() as scope:
        await func(scope, *args)
