"""Sources, consumers and a clock driver for the operator tests."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio

from spikard.ops import ManualClock, Stage

T = TypeVar("T")

MAX_STEPS = 10_000
"""Most clock steps one run may take (a bound, far above what any test needs)."""


@dataclass
class Log:
    """What a source did: how many items were pulled, whether it was closed."""

    pulled: int = 0
    closed: bool = False
    events: list[str] = field(default_factory=list)


async def scheduled_generator(
    clock: ManualClock, schedule: Sequence[tuple[float, T]], log: Log, end: float | None = None
) -> AsyncIterator[T]:
    """An async generator yielding each item at its time (then ending at ``end``)."""
    try:
        for at, item in schedule:
            await clock.sleep_until(at)
            log.pulled += 1
            yield item
        if end is not None:
            await clock.sleep_until(end)
    finally:
        log.closed = True


class ScheduledSource(Generic[T]):
    """The same schedule from a cancel-safe iterator (pulled directly, without a pump)."""

    cancel_safe = True

    def __init__(
        self,
        clock: ManualClock,
        schedule: Sequence[tuple[float, T]],
        log: Log,
        end: float | None = None,
    ) -> None:
        self._clock = clock
        self._schedule = list(schedule)
        self._log = log
        self._end = end
        self._index = 0

    def __aiter__(self) -> ScheduledSource[T]:
        return self

    async def __anext__(self) -> T:
        if self._index >= len(self._schedule):
            if self._end is not None:
                await self._clock.sleep_until(self._end)
            raise StopAsyncIteration
        at, item = self._schedule[self._index]
        if at > self._clock.now():  # like a queue: an item that is due comes without a wait
            await self._clock.sleep_until(at)  # cancelled here: nothing taken yet
        self._index += 1
        self._log.pulled += 1
        return item

    async def aclose(self) -> None:
        self._log.closed = True


def source(
    kind: str,
    clock: ManualClock,
    schedule: Sequence[tuple[float, T]],
    log: Log,
    end: float | None = None,
) -> AsyncIterable[T]:
    """A scheduled source: ``"generator"`` (pumped) or ``"cancel_safe"`` (direct)."""
    if kind == "generator":
        return scheduled_generator(clock, schedule, log, end)
    return ScheduledSource(clock, schedule, log, end)


SOURCE_KINDS = ("generator", "cancel_safe")


@dataclass
class Run:
    """What a consumer saw: (time, item) pairs, and the error that ended it, if any."""

    items: list[tuple[float, Any]] = field(default_factory=list)
    error: BaseException | None = None
    ended_at: float | None = None

    @property
    def values(self) -> list[Any]:
        return [item for _, item in self.items]


async def drive(
    clock: ManualClock,
    stream: AsyncIterator[Any],
    *,
    pause: float = 0.0,
    on_item: Any = None,
) -> Run:
    """Consume ``stream`` (pausing ``pause`` manual seconds after each item), moving the
    clock from deadline to deadline until the consumer is done; fail if it stalls."""
    run = Run()
    done = anyio.Event()

    async def consume() -> None:
        try:
            if isinstance(stream, Stage):
                stream.manage()  # closed below, by this task
            async for item in stream:
                run.items.append((clock.now(), item))
                if on_item is not None:
                    on_item(item)
                if pause:
                    await clock.sleep_until(clock.now() + pause)
        except Exception as exc:
            run.error = exc
        finally:
            run.ended_at = clock.now()
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
            done.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(consume)
            for _ in range(MAX_STEPS):
                await clock.settle()
                if done.is_set():
                    break
                deadline = clock.next_deadline()
                assert deadline is not None, f"stalled at {clock.now()} after {run.items!r}"
                await clock.advance_to(deadline)
            else:  # pragma: no cover
                raise AssertionError("the run did not finish")
    return run


def assert_close(
    actual: Sequence[tuple[float, Any]], expected: Sequence[tuple[float, Any]]
) -> None:
    """The same items at the same times (to 1e-9 s)."""
    assert [item for _, item in actual] == [item for _, item in expected]
    assert all(abs(a - e) < 1e-9 for (a, _), (e, _) in zip(actual, expected, strict=True)), (
        f"times differ: {[t for t, _ in actual]} != {[t for t, _ in expected]}"
    )
