"""Each ASGI call (a request or a WebSocket) in a task of the adapter's group.

On asyncio the task is a plain one, cancelled once with ``Task.cancel()`` (abandoned by the
server, unanswered, cut at shutdown), as uvicorn cancels its tasks: no anyio scope per call.
On trio it runs in a cancel scope of its own. Either way ``call.cancel`` cancels it once it
runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

import anyio

from ._types import CallHost

__all__ = ["Cancellable", "start_call"]


class Cancellable(Protocol):
    """A call whose task can be cancelled through it."""

    cancel: Callable[[], object] | None


_C = TypeVar("_C", bound=Cancellable)
Run = Callable[[CallHost, _C], Coroutine[Any, Any, None]]


def start_call(host: CallHost, call: _C, run: Run[_C]) -> None:
    """Start ``run(host, call)`` in a task of the host's group."""
    tasks = host.running()
    if host.loop is not None:
        tasks.start_soon_unshielded(_in_task, host, call, run)
    else:
        tasks.start_soon_scoped(_in_scope, host, call, run)


async def _in_task(host: CallHost, call: _C, run: Run[_C]) -> None:
    task = asyncio.current_task(host.loop)
    assert task is not None
    call.cancel = task.cancel
    await run(host, call)


async def _in_scope(scope: anyio.CancelScope, host: CallHost, call: _C, run: Run[_C]) -> None:
    call.cancel = scope.cancel  # this task's own
    await run(host, call)
