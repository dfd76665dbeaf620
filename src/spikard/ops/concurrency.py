"""``map_concurrent``: bounded concurrent async work per item.

Theory of operation
-------------------
A feeder task pulls the source and starts one worker task per item, in the stage's task
group. ``limit`` counts the items between the source and the consumer: pulled and not yet
taken by the consumer, whether their work runs or is done. The feeder pulls the next item
only when that count is below ``limit``, so at most ``limit`` calls run at once and at most
``limit`` results wait, however slow the consumer.

``ordered=True`` hands results over in the order of the items (a slow item holds back the
results behind it, and the slots they use); ``ordered=False`` in the order they finish. A
call that raises ends the stream with its exception, raised by the consumer's
``async for`` where its result would have been; the other calls are cancelled. An error
of the source is raised after the results of the items before it. Closing the stage
cancels every call still running.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

import anyio

from ._core import Stage, check_count, close_quietly, manage_in_this_task

__all__ = ["MapConcurrent", "MapConcurrentStage", "map_concurrent"]

_A = TypeVar("_A")
_B = TypeVar("_B")


class _Outcome(Generic[_B]):
    __slots__ = ("error", "value")

    def __init__(self, value: _B | None, error: Exception | None) -> None:
        self.value = value
        self.error = error


class MapConcurrentStage(Stage[_B], Generic[_A, _B]):
    """``source | map_concurrent(f, limit)``: ``await f(item)``, ``limit`` at a time."""

    def __init__(self, source: AsyncIterable[_A], operator: MapConcurrent[_A, _B]) -> None:
        super().__init__()
        self._source = source
        self._function = operator.function
        self._limit = operator.limit
        self._ordered = operator.ordered
        self._started = False
        self._pulled = 0
        """Items pulled so far (the index of the next one)."""
        self._taken = 0
        """Results handed to the consumer so far (ordered: the index of the next one)."""
        self._by_index: dict[int, _Outcome[_B]] = {}
        self._finished: deque[_Outcome[_B]] = deque()
        self._final: BaseException | None = None
        self._space: anyio.Event | None = None
        self._ready: anyio.Event | None = None

    @property
    def running(self) -> int:
        """Items pulled whose result the consumer has not taken yet (at most ``limit``)."""
        return self._pulled - self._taken

    def _wake_consumer(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.set()

    async def _feed(self) -> None:
        iterator: AsyncIterator[_A] | None = None
        try:
            iterator = aiter(self._source)
            manage_in_this_task(iterator)
            while True:
                while self._pulled - self._taken >= self._limit:
                    self._space = anyio.Event()
                    await self._space.wait()
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    self._final = StopAsyncIteration()
                    return
                index = self._pulled
                self._pulled += 1
                task_group = self._task_group
                if task_group is None:  # closing
                    return
                task_group.start_soon(self._work, index, item, name="spikard.ops worker")
        except Exception as exc:
            self._final = exc
        finally:
            if self._final is None:
                self._final = StopAsyncIteration()
            self._wake_consumer()
            if iterator is not None:
                await close_quietly(iterator)
            else:
                await close_quietly(self._source)

    async def _work(self, index: int, item: _A) -> None:
        try:
            outcome = _Outcome(await self._function(item), None)
        except Exception as exc:
            outcome = _Outcome[_B](None, exc)
        if self._ordered:
            self._by_index[index] = outcome
        else:
            self._finished.append(outcome)
        self._wake_consumer()

    def _take(self) -> _Outcome[_B] | None:
        if self._ordered:
            outcome = self._by_index.pop(self._taken, None)
        else:
            outcome = self._finished.popleft() if self._finished else None
        if outcome is not None:
            self._taken += 1
            space, self._space = self._space, None
            if space is not None:
                space.set()
        return outcome

    async def _next(self) -> _B:
        if not self._started:
            await self._prepare()
        while True:
            outcome = self._take()
            if outcome is not None:
                if outcome.error is not None:
                    raise outcome.error
                return outcome.value  # type: ignore[return-value]
            if self._final is not None and self._pulled == self._taken:
                if isinstance(self._final, StopAsyncIteration):
                    raise StopAsyncIteration
                raise self._final
            self._ready = ready = self._ready or anyio.Event()
            await ready.wait()

    async def _prepare(self) -> None:
        if not self._started:
            self._started = True
            await self._start(self._feed, "spikard.ops feeder")

    async def _close_source(self) -> None:
        if not self._started:
            await close_quietly(self._source)


class MapConcurrent(Generic[_A, _B]):
    """The operator :func:`map_concurrent` returns."""

    __slots__ = ("function", "limit", "ordered")

    def __init__(
        self,
        function: Callable[[_A], Awaitable[_B]],
        limit: int,
        ordered: bool,
    ) -> None:
        if not callable(function):
            raise TypeError(f"map_concurrent() needs an async function, not {function!r}")
        self.function = function
        self.limit = check_count("limit", limit)
        self.ordered = ordered

    def __call__(self, source: AsyncIterable[_A]) -> MapConcurrentStage[_A, _B]:
        """Apply the operator: the same as ``source | operator``."""
        return MapConcurrentStage(source, self)

    def __ror__(self, source: AsyncIterable[_A]) -> MapConcurrentStage[_A, _B]:
        return MapConcurrentStage(source, self)

    def __repr__(self) -> str:
        return f"map_concurrent({self.function!r}, {self.limit}, ordered={self.ordered})"


def map_concurrent(
    function: Callable[[_A], Awaitable[_B]],
    limit: int,
    ordered: bool = True,
) -> MapConcurrent[_A, _B]:
    """Run ``await function(item)`` for up to ``limit`` items at once.

    ::

        async def lookup(message: WebSocketMessage) -> str:
            return await database.fetch(message.as_text())

        @app.websocket("/lookup")
        def lookups(socket: WebSocket):
            return socket | ops.map_concurrent(lookup, limit=8)   # replies in order

    Args:
        function: an async function of one item.
        limit: the most items between the source and the consumer (running or done and
            not yet taken); at least 1.
        ordered: True gives results in the order of the items, False as they finish.

    An exception ``function`` raises ends the stream: it is raised where its result would
    have been, and the calls still running are cancelled.
    """
    return MapConcurrent(function, limit, ordered)
