"""``buffer``: each policy keeps its promise, and the queue stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikard import ops
from spikard.ops import ManualClock

from .support import Log, drive, scheduled_generator

pytestmark = pytest.mark.anyio

gaps = st.lists(st.integers(min_value=0, max_value=3), max_size=30)


def is_subsequence(part: list[int], whole: list[int]) -> bool:
    remaining = iter(whole)
    return all(item in remaining for item in part)


@settings(max_examples=50, deadline=None)
@given(
    gap_list=gaps,
    size=st.integers(min_value=1, max_value=5),
    policy=st.sampled_from(["block", "drop_oldest", "drop_newest"]),
    pause=st.sampled_from([0.25, 1.5, 4.5]),
)
async def test_policies(gap_list: list[int], size: int, policy: str, pause: float) -> None:
    clock = ManualClock()
    times = [float(sum(gap_list[: index + 1])) for index in range(len(gap_list))]
    schedule = [(at, index) for index, at in enumerate(times)]
    log = Log()
    buffered = scheduled_generator(clock, schedule, log) | ops.buffer(
        size,
        policy,  # type: ignore[arg-type]
    )
    queued = 0

    def seen(_: int) -> None:
        nonlocal queued
        queued = max(queued, len(buffered))

    run = await drive(clock, buffered, pause=pause, on_item=seen)
    everything = [item for _, item in schedule]
    assert run.error is None
    assert queued <= size
    assert is_subsequence(run.values, everything)
    assert buffered.dropped == len(everything) - len(run.values)
    if policy == "block":
        assert run.values == everything
        # the pump is ahead by at most the queue and the item in hand
        assert buffered.dropped == 0
    elif policy == "drop_oldest" and everything:
        assert run.values[-1] == everything[-1]  # the freshest always arrives
    elif policy == "drop_newest" and everything:
        assert run.values[0] == everything[0]
    assert log.closed


async def test_block_pauses_the_source() -> None:
    clock = ManualClock()
    log = Log()
    schedule = [(0.0, index) for index in range(20)]
    buffered = scheduled_generator(clock, schedule, log) | ops.buffer(3)
    pulled_when_seen: list[int] = []
    run = await drive(
        clock, buffered, pause=1.0, on_item=lambda _: pulled_when_seen.append(log.pulled)
    )
    assert run.values == list(range(20))
    # at each item the consumer takes, at most size + 1 more have been pulled
    assert all(p - taken <= 4 for taken, p in enumerate(pulled_when_seen, start=1))
    assert max(pulled_when_seen) > 1  # and it does read ahead


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        ops.buffer(0)
    with pytest.raises(ValueError, match="policy"):
        ops.buffer(1, "drop_everything")  # type: ignore[arg-type]
