"""One task for the timers of every open WebSocket: keepalive, idle, write and close deadlines.

A task per connection just to sleep between pings costs a task, a task group and a cancel
scope per WebSocket, and a cancellation at its end. Instead each server runs one
:class:`Heartbeat`: connections join it when they open and leave when they end, and every
tick it asks each of them what is due (:meth:`Timed.on_timer`). The tick is a quarter of the
shortest timer any member uses, so a deadline fires at most 25 % of that late. A member's
timer work is synchronous (it writes without waiting, or aborts), so one stuck peer never
delays the others. A member whose timer raises is logged with its traceback and told
(:meth:`Timed.timer_failed`), which ends that connection: it never silently loses its
keepalive.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import anyio
import anyio.abc

__all__ = ["Heartbeat", "Timed"]

logger = logging.getLogger("spikard.websocket")

_TICKS_PER_PERIOD = 4


class Timed(Protocol):
    """A member of a :class:`Heartbeat`."""

    def on_timer(self, now: float) -> None:
        """Do what is due at ``now`` (``anyio.current_time()``); never block."""

    def timer_failed(self) -> None:
        """:meth:`on_timer` raised: give up (the member was taken off the heartbeat)."""


class Heartbeat:
    """Drives the timers of many connections from one task (:meth:`run`)."""

    def __init__(self) -> None:
        self._members: set[Timed] = set()
        self._tick = math.inf
        self._running = False
        self._wakeup: anyio.Event | None = None

    @property
    def running(self) -> bool:
        """True while :meth:`run` is running."""
        return self._running

    @property
    def tick(self) -> float:
        """Seconds between two ticks (infinite while no member has a timer)."""
        return self._tick

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

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Tick until cancelled (``task_group.start(heartbeat.run)`` waits until it runs)."""
        self._running = True
        task_status.started()
        try:
            while True:
                self._wakeup = anyio.Event()
                with anyio.move_on_after(self._tick):  # ticks on when empty: joining is free
                    await self._wakeup.wait()
                self._tick_members(anyio.current_time())
        finally:
            self._running = False

    def _tick_members(self, now: float) -> None:
        # A function of its own: its loop variable does not keep the last member alive
        # until the next tick.
        for member in list(self._members):
            try:
                member.on_timer(now)
            except Exception:
                logger.exception("timer of %r failed; ending it", member)
                self._members.discard(member)
                try:
                    member.timer_failed()
                except Exception:
                    logger.exception("ending %r failed too", member)
