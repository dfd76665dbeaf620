"""Timing operators: ``throttle``, ``debounce`` and ``timeout``.

``throttle(interval, latest=True)``
    At most one item per ``interval``. The first item of a burst passes at once (leading
    edge) and opens an interval; items arriving during it are held, newest only, and with
    ``latest=True`` the newest is emitted when the interval ends (trailing edge), which
    opens the next one. With ``latest=False`` they are dropped. For presence and cursor
    updates: the client sees the first move at once and the last one soon after.
``debounce(interval)``
    An item is emitted once ``interval`` passed without a newer one; a newer one replaces
    it. At the end of the source the held item is emitted at once. A source that never
    pauses for ``interval`` emits nothing until it does: use ``throttle`` for a steady
    rate.
``timeout(idle, on_timeout="end")``
    Acts when the source stays silent for ``idle`` seconds (counted while the consumer
    waits for an item): ``"end"`` ends the stream (a WebSocket handler then closes with
    1000), ``"close"`` raises :class:`~spikard.ops.IdleTimeout` (1008), and a callable
    (sync or async, no arguments) is called and the wait starts again; it may raise.

``throttle`` and ``debounce`` keep pulling while they hold an item, so what they replace is
dropped (counted in ``dropped``); they hold at most one item.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Literal, TypeVar, cast

from ._clock import SYSTEM_CLOCK, Clock
from ._core import MISSING, TIMEOUT, Operator, Stage, Upstream, check_positive
from .errors import IdleTimeout

__all__ = ["Debounce", "Throttle", "Timeout", "debounce", "throttle", "timeout"]

_T = TypeVar("_T")


class _HoldingStage(Stage[_T]):
    """A stage that holds at most one item and emits it at a time of its choosing."""

    def __init__(self, source: AsyncIterable[_T], interval: float, clock: Clock) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._upstream = Upstream(source, self, clock, deadlines=True)
        self._held: _T | object = MISSING
        self._due = 0.0
        self._final: BaseException | None = None
        self.dropped = 0
        """Items replaced by a newer one (or dropped by ``throttle(latest=False)``)."""

    def _take(self) -> _T:
        held, self._held = self._held, MISSING
        return cast(_T, held)

    def _end(self) -> BaseException:
        final, self._final = self._final, StopAsyncIteration()
        return cast(BaseException, final)

    async def _close_source(self) -> None:
        await self._upstream.aclose()


class ThrottleStage(_HoldingStage[_T]):
    """``source | throttle(...)``: at most one item per interval."""

    def __init__(
        self, source: AsyncIterable[_T], interval: float, latest: bool, clock: Clock
    ) -> None:
        super().__init__(source, interval, clock)
        self._latest = latest
        self._open = False
        """True while an interval runs (it ends at ``_due``)."""

    async def _next(self) -> _T:
        clock = self._clock
        while True:
            if self._open and clock.now() >= self._due:
                self._open = False
                if self._held is not MISSING:  # trailing edge
                    self._open = True
                    self._due = clock.now() + self._interval
                    return self._take()
            if self._final is not None:
                if self._held is MISSING:
                    raise self._end()
                await clock.sleep_until(self._due)  # the last item, at the interval's end
                continue
            try:
                if not self._open:
                    item = await self._upstream.pull()
                    self._open = True  # leading edge
                    self._due = clock.now() + self._interval
                    return item
                pulled = await self._upstream.next(self._due)
            except Exception as exc:
                self._final = exc
                continue
            if pulled is TIMEOUT:
                continue
            if self._held is not MISSING or not self._latest:
                self.dropped += 1
            if self._latest:
                self._held = pulled


class DebounceStage(_HoldingStage[_T]):
    """``source | debounce(...)``: items followed by ``interval`` of silence."""

    async def _next(self) -> _T:
        clock = self._clock
        while True:
            if self._final is not None:
                if self._held is not MISSING:
                    return self._take()
                raise self._end()
            try:
                if self._held is MISSING:
                    item = await self._upstream.pull()
                else:
                    pulled = await self._upstream.next(self._due)
                    if pulled is TIMEOUT:
                        return self._take()
                    item = pulled
                    self.dropped += 1
            except Exception as exc:
                self._final = exc
                continue
            self._held = item
            self._due = clock.now() + self._interval


class Throttle(Operator):
    """The operator :func:`throttle` returns."""

    __slots__ = ("clock", "interval", "latest")

    def __init__(self, interval: float, latest: bool, clock: Clock) -> None:
        self.interval = check_positive("interval", interval)
        self.latest = latest
        self.clock = clock

    def __call__(self, source: AsyncIterable[_T]) -> ThrottleStage[_T]:
        """Apply the operator: the same as ``source | operator``."""
        return self._apply(source)

    def __ror__(self, source: AsyncIterable[_T]) -> ThrottleStage[_T]:
        return self._apply(source)

    def _apply(self, source: AsyncIterable[_T]) -> ThrottleStage[_T]:
        return ThrottleStage(source, self.interval, self.latest, self.clock)

    def __repr__(self) -> str:
        return f"throttle({self.interval:g}, latest={self.latest})"


class Debounce(Operator):
    """The operator :func:`debounce` returns."""

    __slots__ = ("clock", "interval")

    def __init__(self, interval: float, clock: Clock) -> None:
        self.interval = check_positive("interval", interval)
        self.clock = clock

    def __call__(self, source: AsyncIterable[_T]) -> DebounceStage[_T]:
        """Apply the operator: the same as ``source | operator``."""
        return self._apply(source)

    def __ror__(self, source: AsyncIterable[_T]) -> DebounceStage[_T]:
        return self._apply(source)

    def _apply(self, source: AsyncIterable[_T]) -> DebounceStage[_T]:
        return DebounceStage(source, self.interval, self.clock)

    def __repr__(self) -> str:
        return f"debounce({self.interval:g})"


def throttle(interval: float, latest: bool = True, *, clock: Clock = SYSTEM_CLOCK) -> Throttle:
    """Let at most one item through per ``interval`` seconds (leading and trailing edge).

    ::

        return socket | ops.throttle(0.05)      # cursor moves: at most 20 per second

    Args:
        interval: the shortest time between two items, in seconds.
        latest: True emits the newest item held back when the interval ends; False drops
            what arrives during an interval.
        clock: where time comes from (tests pass a :class:`ManualClock`).
    """
    return Throttle(interval, latest, clock)


def debounce(interval: float, *, clock: Clock = SYSTEM_CLOCK) -> Debounce:
    """Emit an item once ``interval`` seconds passed without a newer one.

    Args:
        interval: the silence that releases the held item, in seconds.
        clock: where time comes from (tests pass a :class:`ManualClock`).
    """
    return Debounce(interval, clock)


OnTimeout = Literal["end", "close"] | Callable[[], Awaitable[None] | None]
"""What ``timeout`` does when the source stays silent for too long."""


class TimeoutStage(Stage[_T]):
    """``source | timeout(...)``: the source's items, until it is silent for too long."""

    def __init__(self, source: AsyncIterable[_T], operator: Timeout) -> None:
        super().__init__()
        self._operator = operator
        self._upstream = Upstream(source, self, operator.clock, deadlines=True)
        self._due: float | None = None
        self.timeouts = 0
        """How often the source was silent for ``idle`` seconds."""

    async def _next(self) -> _T:
        operator = self._operator
        clock = operator.clock
        while True:
            if self._due is None:
                self._due = clock.now() + operator.idle
            item = await self._upstream.next(self._due)
            if item is not TIMEOUT:
                self._due = None
                return item
            self.timeouts += 1
            self._due = None
            action = operator.on_timeout
            if action == "end":
                raise StopAsyncIteration
            if action == "close":
                raise IdleTimeout(operator.idle)
            result = action()
            if inspect.isawaitable(result):
                await result

    async def _close_source(self) -> None:
        await self._upstream.aclose()


class Timeout(Operator):
    """The operator :func:`timeout` returns."""

    __slots__ = ("clock", "idle", "on_timeout")

    def __init__(self, idle: float, on_timeout: OnTimeout, clock: Clock) -> None:
        self.idle = check_positive("idle", idle)
        if not callable(on_timeout) and on_timeout not in ("end", "close"):
            raise ValueError(f"on_timeout must be 'end', 'close' or a callable, not {on_timeout!r}")
        self.on_timeout = on_timeout
        self.clock = clock

    def __call__(self, source: AsyncIterable[_T]) -> TimeoutStage[_T]:
        """Apply the operator: the same as ``source | operator``."""
        return self._apply(source)

    def __ror__(self, source: AsyncIterable[_T]) -> TimeoutStage[_T]:
        return self._apply(source)

    def _apply(self, source: AsyncIterable[_T]) -> TimeoutStage[_T]:
        return TimeoutStage(source, self)

    def __repr__(self) -> str:
        return f"timeout({self.idle:g}, on_timeout={self.on_timeout!r})"


def timeout(idle: float, on_timeout: OnTimeout = "end", *, clock: Clock = SYSTEM_CLOCK) -> Timeout:
    """End or close a stream that stays silent for ``idle`` seconds.

    ::

        return socket | ops.timeout(30, on_timeout="close")   # 1008 after 30 s of silence

    Args:
        idle: the silence allowed, in seconds, counted while the consumer waits.
        on_timeout: ``"end"`` (the stream ends), ``"close"`` (raise :class:`IdleTimeout`),
            or a callable (sync or async, no arguments) called before waiting again.
        clock: where time comes from (tests pass a :class:`ManualClock`).
    """
    return Timeout(idle, on_timeout, clock)
