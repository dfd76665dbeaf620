"""``batch``: group items into lists, emitted when full or when the oldest waited too long.

A batch starts with its first item and is emitted as soon as it holds ``max_items`` items,
or ``max_delay`` seconds after its first item arrived, whichever comes first. While the
consumer is away nothing is pulled, so a slow client gets bigger batches (up to
``max_items``) instead of a growing queue. ``max_delay=0`` emits what is already waiting
(one pull that does not wait), ``max_delay=None`` only full batches. At the end of the
source the last, partial batch is emitted; an error of the source is raised after the items
before it were emitted.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import TypeVar

from ._clock import SYSTEM_CLOCK, Clock
from ._core import Stage, Upstream, check_count, check_positive

__all__ = ["Batch", "BatchStage", "batch"]

_T = TypeVar("_T")


class BatchStage(Stage[list[_T]]):
    """``source | batch(...)``: lists of consecutive items."""

    def __init__(self, source: AsyncIterable[_T], operator: Batch) -> None:
        super().__init__()
        self._max_items = operator.max_items
        self._max_delay = operator.max_delay
        self._clock = operator.clock
        self._upstream = Upstream(
            source, self, operator.clock, deadlines=operator.max_delay is not None
        )
        self._pending: list[_T] = []
        self._due = 0.0
        self._final: BaseException | None = None

    def _flush(self) -> list[_T]:
        items, self._pending = self._pending, []
        return items

    async def _next(self) -> list[_T]:
        if self._final is not None:
            final, self._final = self._final, StopAsyncIteration()
            raise final
        pending = self._pending  # kept when a pull is stopped: the next call goes on
        try:
            if not pending:
                pending.append(await self._upstream.pull())
                if self._max_delay is not None:
                    self._due = self._clock.now() + self._max_delay
            due = None if self._max_delay is None else self._due
            await self._upstream.fill(pending, self._max_items, due)
        except Exception as exc:  # StopAsyncIteration too: emit what came before it
            if not pending:
                raise
            self._final = exc
        return self._flush()

    async def _close_source(self) -> None:
        await self._upstream.aclose()


class Batch:
    """The operator :func:`batch` returns."""

    __slots__ = ("clock", "max_delay", "max_items")

    def __init__(self, max_items: int, max_delay: float | None, clock: Clock) -> None:
        self.max_items = check_count("max_items", max_items)
        self.max_delay = (
            None if max_delay is None else check_positive("max_delay", max_delay, allow_zero=True)
        )
        self.clock = clock

    def __call__(self, source: AsyncIterable[_T]) -> BatchStage[_T]:
        """Apply the operator: the same as ``source | operator``."""
        return BatchStage(source, self)

    def __ror__(self, source: AsyncIterable[_T]) -> BatchStage[_T]:
        return BatchStage(source, self)

    def __repr__(self) -> str:
        return f"batch({self.max_items}, {self.max_delay!r})"


def batch(max_items: int, max_delay: float | None, *, clock: Clock = SYSTEM_CLOCK) -> Batch:
    """Group items into lists of at most ``max_items``, held at most ``max_delay`` seconds.

    ::

        @app.websocket("/ticker")
        async def ticker(socket: WebSocket):
            async with aclosing(prices() | ops.batch(50, 0.1)) as updates:
                async for group in updates:            # a list of up to 50 prices
                    yield json.dumps(group)

    Args:
        max_items: the largest batch; a full batch is emitted at once.
        max_delay: the longest the first item of a batch waits, in seconds (0: emit what
            is already waiting; None: no limit).
        clock: where time comes from (tests pass a :class:`ManualClock`).

    Raises:
        ValueError: ``max_items`` below 1, or a negative or infinite ``max_delay``.
    """
    return Batch(max_items, max_delay, clock)
