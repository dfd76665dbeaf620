"""A stage stopped at a deadline of the stage after it loses nothing: chains of lossless
operators under a ``batch`` deliver every item once, in order, on a manual clock."""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikard import ops
from spikard.ops import ManualClock

from .support import SOURCE_KINDS, Log, drive, source

pytestmark = pytest.mark.anyio


def _noop() -> None:
    return None


def lossless(clock: ManualClock) -> dict[str, Callable[[], Any]]:
    """Operators that drop nothing, each with the clock of the test."""
    return {
        "rate_limit_delay": lambda: ops.rate_limit(2, 2, "delay", clock=clock),
        "map": lambda: ops.map(lambda item: item),
        "filter": lambda: ops.filter(lambda item: True),
        "timeout_callable": lambda: ops.timeout(0.7, _noop, clock=clock),
        "batch_then_flatten": lambda: ops.batch(3, 0.3, clock=clock),
        "buffer": lambda: ops.buffer(2),
    }


def flatten(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out.extend(flatten(value) if isinstance(value, list) else [value])
    return out


@settings(max_examples=80, deadline=None)
@given(
    gap_list=st.lists(st.integers(min_value=0, max_value=3), max_size=20),
    chain=st.lists(
        st.sampled_from(
            [
                "rate_limit_delay",
                "map",
                "filter",
                "timeout_callable",
                "batch_then_flatten",
                "buffer",
            ]
        ),
        min_size=1,
        max_size=4,
    ),
    max_items=st.integers(min_value=1, max_value=4),
    delay=st.sampled_from([0.0, 0.25, 1.25]),
    pause=st.sampled_from([0.0, 0.5]),
    kind=st.sampled_from(SOURCE_KINDS),
)
async def test_every_item_once_in_order(
    gap_list: list[int],
    chain: list[str],
    max_items: int,
    delay: float,
    pause: float,
    kind: str,
) -> None:
    clock = ManualClock()
    schedule = [(float(t), index) for index, t in enumerate(accumulate(gap_list))]
    log = Log()
    operators = lossless(clock)
    stream: Any = source(kind, clock, schedule, log)
    for name in chain:
        stream = stream | operators[name]()
    stream = stream | ops.batch(max_items, delay, clock=clock)
    run = await drive(clock, stream, pause=pause)
    assert run.error is None
    assert flatten(run.values) == [item for _, item in schedule]
    assert log.closed
