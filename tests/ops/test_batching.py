"""``batch``: order, sizes, timing against a model, backpressure, closing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikard import ops
from spikard.ops import ManualClock

from .support import SOURCE_KINDS, Log, drive, source

pytestmark = pytest.mark.anyio

gaps = st.lists(st.integers(min_value=0, max_value=4), max_size=25)


def arrivals(gap_list: list[int]) -> list[tuple[float, int]]:
    """Items 0, 1, ... at integer times (the gaps between them drawn)."""
    return [(float(t), index) for index, t in enumerate(accumulate(gap_list))]


def model(
    schedule: list[tuple[float, int]], max_items: int, max_delay: float, end: float
) -> list[tuple[float, list[int]]]:
    """When a consumer that is always ready gets which batch."""
    out: list[tuple[float, list[int]]] = []
    index = 0
    while index < len(schedule):
        due = schedule[index][0] + max_delay
        group = [schedule[index][1]]
        index += 1
        while index < len(schedule) and len(group) < max_items and schedule[index][0] < due:
            group.append(schedule[index][1])
            index += 1
        if len(group) == max_items:
            at = schedule[index - 1][0]
        elif index < len(schedule):
            at = due
        else:
            at = min(due, end)
        out.append((at, group))
    return out


@settings(max_examples=60, deadline=None)
@given(
    gap_list=gaps,
    max_items=st.integers(min_value=1, max_value=6),
    delay=st.integers(min_value=0, max_value=5),
    tail=st.integers(min_value=0, max_value=8),
    kind=st.sampled_from(SOURCE_KINDS),
)
async def test_batches_match_the_model(
    gap_list: list[int], max_items: int, delay: int, tail: int, kind: str
) -> None:
    clock = ManualClock()
    schedule = arrivals(gap_list)
    end = (schedule[-1][0] if schedule else 0.0) + tail
    log = Log()
    max_delay = delay + 0.5  # never at the same instant as an arrival
    stream = source(kind, clock, schedule, log, end) | ops.batch(max_items, max_delay, clock=clock)
    run = await drive(clock, stream)
    assert run.error is None
    assert run.items == model(schedule, max_items, max_delay, end)
    assert log.closed


@settings(max_examples=40, deadline=None)
@given(
    gap_list=gaps,
    max_items=st.integers(min_value=1, max_value=6),
    pause=st.integers(min_value=1, max_value=6),
    kind=st.sampled_from(SOURCE_KINDS),
)
async def test_a_slow_consumer_gets_every_item_once_in_order(
    gap_list: list[int], max_items: int, pause: int, kind: str
) -> None:
    clock = ManualClock()
    schedule = arrivals(gap_list)
    log = Log()
    stream = source(kind, clock, schedule, log) | ops.batch(max_items, 1.5, clock=clock)
    consumed = 0
    worst = 0

    def seen(group: list[int]) -> None:
        nonlocal consumed, worst
        consumed += len(group)
        worst = max(worst, log.pulled - consumed)

    run = await drive(clock, stream, pause=pause + 0.25, on_item=seen)
    flat = [item for group in run.values for item in group]
    assert flat == [item for _, item in schedule]
    assert all(1 <= len(group) <= max_items for group in run.values)
    # Nothing is pulled while the consumer is away, beyond one pending pull.
    assert worst <= 1
    assert log.closed


async def test_max_delay_zero_takes_what_is_waiting() -> None:
    clock = ManualClock()
    log = Log()
    schedule = [(0.0, n) for n in range(5)] + [(3.0, 5)]
    stream = source("cancel_safe", clock, schedule, log) | ops.batch(3, 0, clock=clock)
    run = await drive(clock, stream)
    assert run.values == [[0, 1, 2], [3, 4], [5]]


async def test_no_max_delay_waits_for_a_full_batch() -> None:
    clock = ManualClock()
    log = Log()
    schedule = [(float(n * 10), n) for n in range(5)]
    stream = source("generator", clock, schedule, log) | ops.batch(2, None, clock=clock)
    run = await drive(clock, stream)
    assert run.items == [(10.0, [0, 1]), (30.0, [2, 3]), (40.0, [4])]


async def test_items_before_an_error_are_emitted_then_the_error() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        yield 2
        raise LookupError("boom")

    out: list[list[int]] = []

    async def consume() -> None:
        async with failing() | ops.batch(10, 1.0) as groups:
            async for group in groups:
                out.append(group)

    with pytest.raises(LookupError, match="boom"):
        await consume()
    assert out == [[1, 2]]


@pytest.mark.parametrize(
    ("max_items", "max_delay", "error"),
    [
        (0, 1.0, ValueError),
        (1.5, 1.0, TypeError),
        (2, -1.0, ValueError),
        (2, float("inf"), ValueError),
    ],
)
def test_bad_arguments_are_refused(max_items: object, max_delay: object, error: type) -> None:
    with pytest.raises(error):
        ops.batch(max_items, max_delay)  # type: ignore[arg-type]
