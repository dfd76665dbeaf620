"""The clocks timing operators read: anyio's by default, a manual one for tests.

A timing operator needs two things from time: the current instant and a way to stop waiting
at a given instant. :class:`Clock` gives both; :data:`SYSTEM_CLOCK` is anyio's clock (the
event loop's monotonic time, on asyncio and trio alike). anyio offers no fake clock on
asyncio, so :class:`ManualClock` is time that moves only when a test says so: a pipeline
driven by it behaves the same on every run and on both backends.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Protocol

import anyio
import anyio.lowlevel

__all__ = ["SYSTEM_CLOCK", "AnyioClock", "Clock", "ManualClock"]


class Clock(Protocol):
    """What a timing operator asks of time (``clock=`` of every timing operator)."""

    def now(self) -> float:
        """Return the current time in seconds (monotonic; only differences matter)."""
        ...

    def deadline_scope(self, deadline: float) -> anyio.CancelScope:
        """Return a cancel scope that is cancelled once :meth:`now` reaches ``deadline``."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`now` reaches ``deadline`` (at once when it has)."""
        ...


def _on_the_millisecond(deadline: float) -> float:
    """Round a deadline ahead up to a whole number of milliseconds from now (less 0.1 µs).

    uvloop's timers count whole milliseconds and round: one set for 1.3 ms fires after 1 ms,
    anyio sees the deadline not reached and sets another for 0.3 ms, which fires at once,
    and so on until the millisecond is over: a busy wait. A deadline a whole number of
    milliseconds away fires when it is due. Elsewhere it costs at most a millisecond.
    """
    now = anyio.current_time()
    if deadline <= now or math.isinf(deadline):
        return deadline
    return now + math.ceil((deadline - now) * 1000.0) / 1000.0 - 1e-7


class AnyioClock:
    """anyio's clock: the running event loop's time (deadlines to the millisecond)."""

    __slots__ = ()

    def now(self) -> float:
        """Return ``anyio.current_time()``."""
        return anyio.current_time()

    def deadline_scope(self, deadline: float) -> anyio.CancelScope:
        """Return an ``anyio.CancelScope`` with ``deadline`` (up to 1 ms later)."""
        return anyio.CancelScope(deadline=_on_the_millisecond(deadline))

    async def sleep_until(self, deadline: float) -> None:
        """Wait with ``anyio.sleep_until`` (up to 1 ms later)."""
        await anyio.sleep_until(_on_the_millisecond(deadline))

    def __repr__(self) -> str:
        return "SYSTEM_CLOCK"


SYSTEM_CLOCK: AnyioClock = AnyioClock()
"""The default clock of every timing operator."""


class ManualClock:
    """A clock that moves only when told to, for deterministic tests of timing operators.

    ::

        clock = ManualClock()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(consume, source | ops.batch(10, 0.5, clock=clock))
            await clock.advance(0.5)        # every wait due by then has ended, in order

    :meth:`advance` moves time forward deadline by deadline: it sets :meth:`now` to the
    earliest pending deadline, wakes what waited for it, lets the other tasks run for
    ``settle_rounds`` scheduling rounds (:meth:`settle`: enough for the chains of wake-ups
    inside a pipeline; real I/O is not waited for), and goes on with the next one. Works on
    asyncio and trio.
    """

    __slots__ = ("_now", "_order", "_pending", "settle_rounds")

    def __init__(self, start: float = 0.0, *, settle_rounds: int = 64) -> None:
        self.settle_rounds = settle_rounds
        """Scheduling rounds :meth:`settle` gives the other tasks."""
        self._now = float(start)
        self._pending: list[tuple[float, int, anyio.CancelScope]] = []
        self._order = itertools.count()

    def now(self) -> float:
        """Return the current manual time."""
        return self._now

    def deadline_scope(self, deadline: float) -> anyio.CancelScope:
        """Return a cancel scope that :meth:`advance` cancels when it reaches ``deadline``."""
        scope = anyio.CancelScope()
        if deadline <= self._now:
            scope.cancel()
        elif not math.isinf(deadline):
            heapq.heappush(self._pending, (deadline, next(self._order), scope))
        return scope

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`advance` reaches ``deadline`` (a checkpoint when it has)."""
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        with self.deadline_scope(deadline):
            await anyio.sleep_forever()

    def next_deadline(self) -> float | None:
        """Return the earliest deadline still ahead, or None when nothing waits on time.

        A scope that was left before its deadline still counts: reaching its deadline then
        does nothing, which is what real time would do too.
        """
        pending = self._pending
        while pending and pending[0][2].cancel_called:
            heapq.heappop(pending)
        return pending[0][0] if pending else None

    async def advance(self, seconds: float) -> None:
        """Move time ``seconds`` forward, ending every wait due on the way, in order."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        await self.advance_to(self._now + seconds)

    async def settle(self) -> None:
        """Let the other tasks run for :attr:`settle_rounds` scheduling rounds."""
        for _ in range(self.settle_rounds):
            await anyio.lowlevel.checkpoint()

    async def advance_to(self, instant: float) -> None:
        """Move time forward to ``instant`` (see :meth:`advance`)."""
        await self.settle()
        pending = self._pending
        while pending and pending[0][0] <= instant:
            deadline = pending[0][0]
            self._now = max(self._now, deadline)
            while pending and pending[0][0] <= deadline:
                heapq.heappop(pending)[2].cancel()
            await self.settle()
        self._now = max(self._now, instant)
        await self.settle()

    def __repr__(self) -> str:
        return f"<ManualClock now={self._now:g}>"
