"""``throttle``, ``debounce`` and ``timeout`` against models, on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import accumulate, pairwise
from typing import Literal

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikard import ops
from spikard.ops import ManualClock

from .support import SOURCE_KINDS, Log, assert_close, drive, source

pytestmark = pytest.mark.anyio

gaps = st.lists(st.integers(min_value=0, max_value=5), max_size=25)
# Intervals of k + 0.37 s: a chain of them never lands on an arrival (whole seconds).
intervals = st.integers(min_value=0, max_value=4).map(lambda k: k + 0.37)
kinds = st.sampled_from(SOURCE_KINDS)


def schedule_of(gap_list: list[int]) -> list[tuple[float, int]]:
    return [(float(t), index) for index, t in enumerate(accumulate(gap_list))]


def throttle_model(
    schedule: list[tuple[float, int]], interval: float, latest: bool, end: float
) -> list[tuple[float, int]]:
    out: list[tuple[float, int]] = []
    window_end: float | None = None
    held: int | None = None
    events = list(schedule)
    index = 0
    while index < len(events) or held is not None:
        next_arrival = events[index][0] if index < len(events) else None
        if window_end is not None and (next_arrival is None or window_end < next_arrival):
            if held is not None:
                out.append((window_end, held))
                held = None
                window_end += interval
            else:
                window_end = None
            if next_arrival is None and held is None:
                break
            continue
        assert next_arrival is not None
        at, item = events[index]
        index += 1
        if window_end is None:
            out.append((at, item))
            window_end = at + interval
        elif latest:
            held = item
    return out


@settings(max_examples=60, deadline=None)
@given(gap_list=gaps, interval=intervals, latest=st.booleans(), tail=gaps, kind=kinds)
async def test_throttle_matches_the_model(
    gap_list: list[int], interval: float, latest: bool, tail: list[int], kind: str
) -> None:
    clock = ManualClock()
    schedule = schedule_of(gap_list)
    end = (schedule[-1][0] if schedule else 0.0) + sum(tail)
    log = Log()
    throttled = source(kind, clock, schedule, log, end) | ops.throttle(
        interval, latest, clock=clock
    )
    run = await drive(clock, throttled)
    expected = throttle_model(schedule, interval, latest, end)
    assert_close(run.items, expected)
    times = [at for at, _ in run.items]
    assert all(b - a >= interval - 1e-9 for a, b in pairwise(times))
    if latest and schedule:
        assert run.values[-1] == schedule[-1][1]  # the last update always arrives
    assert throttled.dropped == len(schedule) - len(run.items)
    assert log.closed


def debounce_model(
    schedule: list[tuple[float, int]], interval: float, end: float
) -> list[tuple[float, int]]:
    out = []
    for index, (at, item) in enumerate(schedule):
        following = schedule[index + 1][0] if index + 1 < len(schedule) else None
        due = at + interval
        if following is None:
            out.append((min(due, end), item))
        elif following >= due:
            out.append((due, item))
    return out


@settings(max_examples=60, deadline=None)
@given(gap_list=gaps, interval=intervals, tail=st.integers(0, 6), kind=kinds)
async def test_debounce_matches_the_model(
    gap_list: list[int], interval: float, tail: int, kind: str
) -> None:
    clock = ManualClock()
    schedule = schedule_of(gap_list)
    end = (schedule[-1][0] if schedule else 0.0) + tail
    log = Log()
    debounced = source(kind, clock, schedule, log, end) | ops.debounce(interval, clock=clock)
    run = await drive(clock, debounced)
    assert_close(run.items, debounce_model(schedule, interval, end))
    assert log.closed


def timeout_model(
    schedule: list[tuple[float, int]], idle: float, end: float
) -> tuple[list[tuple[float, int]], float, bool]:
    """(items, when the stream stops, whether it timed out)."""
    last = 0.0
    out: list[tuple[float, int]] = []
    for at, item in schedule:
        if at - last > idle:
            return out, last + idle, True
        out.append((at, item))
        last = at
    if end - last > idle:
        return out, last + idle, True
    return out, end, False


@settings(max_examples=60, deadline=None)
@given(
    gap_list=gaps,
    idle=intervals,
    tail=st.integers(0, 6),
    close=st.booleans(),
    kind=kinds,
)
async def test_timeout_matches_the_model(
    gap_list: list[int], idle: float, tail: int, close: bool, kind: str
) -> None:
    clock = ManualClock()
    schedule = schedule_of(gap_list)
    end = (schedule[-1][0] if schedule else 0.0) + tail
    log = Log()
    action: Literal["close", "end"] = "close" if close else "end"
    guarded = source(kind, clock, schedule, log, end) | ops.timeout(idle, action, clock=clock)
    run = await drive(clock, guarded)
    items, stop, timed_out = timeout_model(schedule, idle, end)
    assert run.items == items
    assert run.ended_at == pytest.approx(stop)
    if timed_out and close:
        assert isinstance(run.error, ops.IdleTimeout)
        assert run.error.close_code == 1008
    else:
        assert run.error is None
    assert log.closed


async def test_timeout_callable_is_called_per_silence_and_the_stream_goes_on() -> None:
    clock = ManualClock()
    log = Log()
    calls: list[float] = []

    async def nudge() -> None:
        calls.append(clock.now())

    schedule = [(0.0, 0), (5.0, 1)]
    guarded = source("generator", clock, schedule, log) | ops.timeout(2, nudge, clock=clock)
    run = await drive(clock, guarded)
    assert run.values == [0, 1]
    assert calls == [2.0, 4.0]
    assert guarded.timeouts == 2


async def test_timeout_counts_silence_from_the_first_pull() -> None:
    clock = ManualClock()

    async def never() -> AsyncIterator[int]:
        await anyio.sleep_forever()
        yield 0  # pragma: no cover

    run = await drive(clock, never() | ops.timeout(3, "close", clock=clock))
    assert isinstance(run.error, ops.IdleTimeout)
    assert str(run.error) == "idle for 3 s"
    assert run.ended_at == 3.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: ops.throttle(0),
        lambda: ops.debounce(-1),
        lambda: ops.timeout(float("inf")),
        lambda: ops.timeout(1, "explode"),  # type: ignore[arg-type]
    ],
)
def test_bad_arguments_are_refused(make: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        make()  # type: ignore[operator]
