"""``map_concurrent``: the bound, ordering, errors and cancellation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikard import ops
from spikard.ops import ManualClock

from .support import Log, drive, scheduled_generator

pytestmark = pytest.mark.anyio


class Work:
    """An async function whose calls take a drawn time on a manual clock."""

    def __init__(self, clock: ManualClock, durations: list[int]) -> None:
        self.clock = clock
        self.durations = durations
        self.running = 0
        self.most = 0
        self.started = 0
        self.finished: list[int] = []
        self.cancelled = 0

    async def __call__(self, item: int) -> int:
        self.running += 1
        self.started += 1
        self.most = max(self.most, self.running)
        try:
            await self.clock.sleep_until(self.clock.now() + self.durations[item] + 0.5)
            self.finished.append(item)
            return item * 10
        except anyio.get_cancelled_exc_class():
            self.cancelled += 1
            raise
        finally:
            self.running -= 1


@settings(max_examples=50, deadline=None)
@given(
    durations=st.lists(st.integers(min_value=0, max_value=5), max_size=20),
    limit=st.integers(min_value=1, max_value=5),
    ordered=st.booleans(),
    pause=st.sampled_from([0.0, 0.25, 3.25]),
)
async def test_results_are_complete_bounded_and_in_the_asked_order(
    durations: list[int], limit: int, ordered: bool, pause: float
) -> None:
    clock = ManualClock()
    log = Log()
    work = Work(clock, durations)
    schedule = [(0.0, index) for index in range(len(durations))]
    mapped = scheduled_generator(clock, schedule, log) | ops.map_concurrent(work, limit, ordered)
    waiting = 0

    def seen(_: int) -> None:
        nonlocal waiting
        waiting = max(waiting, mapped.running)

    run = await drive(clock, mapped, pause=pause, on_item=seen)
    assert run.error is None
    if ordered:
        assert run.values == [index * 10 for index in range(len(durations))]
    else:
        assert run.values == [index * 10 for index in work.finished]
        assert sorted(run.values) == [index * 10 for index in range(len(durations))]
    assert work.most <= limit
    assert waiting <= limit  # pulled and not yet taken, however slow the consumer
    if len(durations) > 1 and limit > 1 and pause == 0:
        assert work.most > 1  # it does run calls at the same time
    assert log.closed


async def test_an_error_is_raised_in_order_and_the_other_calls_are_cancelled() -> None:
    clock = ManualClock()
    started: list[int] = []
    cancelled: list[int] = []

    async def lookup(item: int) -> int:
        started.append(item)
        try:
            await clock.sleep_until(clock.now() + {0: 1, 2: 3}.get(item, 10))
        except anyio.get_cancelled_exc_class():
            cancelled.append(item)
            raise
        if item == 2:
            raise KeyError(item)
        return item

    log = Log()
    schedule = [(0.0, index) for index in range(10)]
    mapped = scheduled_generator(clock, schedule, log) | ops.map_concurrent(lookup, 4)
    run = await drive(clock, mapped)
    assert run.values == [0, 1]  # the results before the failed one
    assert isinstance(run.error, KeyError)
    # Four slots: 0 is taken at 1 s, which lets 4 start; 2 fails at 3 s but is raised only
    # after 1 (10 s), and then 4, still running, is cancelled.
    assert started == [0, 1, 2, 3, 4]
    assert cancelled == [4]
    assert log.closed


async def test_closing_early_cancels_the_running_calls_and_closes_the_source() -> None:
    clock = ManualClock()
    log = Log()
    work = Work(clock, [0] + [100] * 9)
    schedule = [(0.0, index) for index in range(10)]
    mapped = scheduled_generator(clock, schedule, log) | ops.map_concurrent(work, 3)

    async def first_only() -> AsyncIterator[int]:
        async with mapped as results:
            async for item in results:
                yield item
                return  # leaves the block: the stage is closed

    run = await drive(clock, first_only())
    assert run.values == [0]
    assert work.cancelled == work.started - 1 >= 2  # every call still running
    assert work.running == 0
    assert log.closed


async def test_a_source_error_comes_after_the_results_before_it() -> None:
    async def source() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise LookupError("source broke")

    async def double(item: int) -> int:
        await anyio.lowlevel.checkpoint()
        return item * 2

    out: list[int] = []

    async def consume() -> None:
        async with source() | ops.map_concurrent(double, 2) as doubled:
            async for item in doubled:
                out.append(item)

    with pytest.raises(LookupError, match="source broke"):
        await consume()
    assert out == [2, 4]


def test_bad_arguments_are_refused() -> None:
    async def noop(item: int) -> int:
        return item  # pragma: no cover

    with pytest.raises(ValueError, match="limit"):
        ops.map_concurrent(noop, 0)
    with pytest.raises(TypeError):
        ops.map_concurrent(42, 1)  # type: ignore[arg-type]


async def test_iterating_a_stage_that_runs_tasks_outside_async_with_is_refused() -> None:
    async def numbers() -> AsyncIterator[int]:
        yield 1

    async def same(item: int) -> int:
        return item

    mapped = numbers() | ops.map_concurrent(same, 2)
    with pytest.raises(RuntimeError, match="async with pipeline as items"):
        await anext(mapped)
    async with numbers() | ops.map_concurrent(same, 2) as results:
        assert [item async for item in results] == [1]
