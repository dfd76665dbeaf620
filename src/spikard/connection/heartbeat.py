"""One task for the timers of every open WebSocket: keepalive pings, pong deadlines, idle closes.

A task per connection just to sleep between pings costs a task, a task group and a cancel
scope per WebSocket, and a cancellation at its end. Instead each server runs one
:class:`Heartbeat`: connections join it when they open and leave when they end, and every
tick it asks each of them what is due (:meth:`Timed.on_timer`). The tick is a quarter of the
shortest timer any member uses, so a deadline fires at most 25 % late; a member's timer work
is synchronous, and anything that must wait (a close handshake, a write that has to queue)
is started in the heartbeat's task group with :meth:`Heartbeat.start_soon`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import anyio
import anyio.abc

__all__ = ["Heartbeat", "Timed"]

logger = logging.getLogger("spikard.websocket")

_TICKS_PER_PERIOD = 4


class Timed(Protocol):
    """A member of a :class:`Heartbeat`."""

    def on_timer(self, now: float) -> None:
        """Do what is due at ``now`` (``anyio.current_time()``); never block."""


class Heartbeat:
    """Drives the timers of many connections from one task (:meth:`run`)."""

    def __init__(self) -> None:
        self._members: set[Timed] = set()
        self._tick = math.inf
        self._task_group: anyio.abc.TaskGroup | None = None
        self._wakeup: anyio.Event | None = None

    @property
    def running(self) -> bool:
        """True while :meth:`run` is running."""
        return self._task_group is not None

    def add(self, member: Timed, period: float) -> None:
        """Start calling ``member.on_timer`` at least every quarter of ``period`` seconds."""
        self._members.add(member)
        tick = period / _TICKS_PER_PERIOD
        if tick < self._tick:
            self._tick = tick
            if self._wakeup is not None:
                self._wakeup.set()  # the loop sleeps on a longer tick, or (at first) forever

    def discard(self, member: Timed) -> None:
        """Stop calling ``member``."""
        self._members.discard(member)

    def start_soon(self, function: Callable[..., Coroutine[Any, Any, Any]], *args: Any) -> None:
        """Run ``function(*args)`` in the heartbeat's task group (for timer work that waits)."""
        if self._task_group is None:
            raise RuntimeError("the heartbeat is not running")
        self._task_group.start_soon(function, *args)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Tick until cancelled (``task_group.start(heartbeat.run)`` waits until it runs)."""
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            task_status.started()
            try:
                await self._tick_forever()
            finally:
                self._task_group = None
                task_group.cancel_scope.cancel()

    async def _tick_forever(self) -> None:
        while True:
            self._wakeup = anyio.Event()
            with anyio.move_on_after(self._tick):  # ticks on when empty: joining costs nothing
                await self._wakeup.wait()
            self._tick_members(anyio.current_time())

    def _tick_members(self, now: float) -> None:
        # A function of its own: its loop variable does not keep the last member alive
        # until the next tick.
        for member in list(self._members):
            try:
                member.on_timer(now)
            except Exception:
                logger.exception("timer of %r failed", member)
                self._members.discard(member)
