"""The helper tasks of one WebSocket session: a task group, made lighter on asyncio.

Every stream session runs its connection's reader next to the handler. An anyio task group
per session would wrap that one task in a task handle, a cancel scope and an event, and
each call into them costs a clock or loop lookup: on a server that opens thousands of
connections a second, that is a measurable share of each. On asyncio a session therefore
runs its helper tasks as plain asyncio tasks with the same contract as a task group: leaving
the ``async with`` block waits for them all, an exception in the block (or a cancellation of
the session) cancels them, and the first error of a helper is raised when the block ends.
Elsewhere (trio) it is an anyio task group.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

import anyio
import anyio.abc

__all__ = ["SessionTasks"]


class SessionTasks:
    """``async with SessionTasks() as tasks: tasks.start_soon(...)``; see the module docs."""

    __slots__ = ("_done", "_error", "_group", "_loop", "_scopes", "_tasks")

    def __init__(self) -> None:
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._group: anyio.abc.TaskGroup | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._scopes: list[anyio.CancelScope] = []
        self._done: asyncio.Future[None] | None = None
        self._error: BaseException | None = None

    async def __aenter__(self) -> SessionTasks:
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
        scope = anyio.CancelScope()
        self._scopes.append(scope)
        task = self._loop.create_task(
            _run_in(scope, func, args), name=None if name is None else str(name)
        )
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def cancel(self) -> None:
        """Cancel every task of the session that is still running (shields are respected)."""
        if self._group is not None:
            self._group.cancel_scope.cancel()
            return
        for scope in self._scopes:
            scope.cancel()

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            error = task.exception()
            if error is not None and self._error is None:
                self._error = error
                self.cancel()
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
        if cancelled and exc is None:
            raise asyncio.CancelledError
        if self._error is not None and exc is None:
            raise self._error
        return None


async def _run_in(
    scope: anyio.CancelScope, func: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]
) -> None:
    """Run ``func(*args)`` in ``scope``, so that cancelling it follows anyio's rules."""
    with scope:
        await func(*args)
