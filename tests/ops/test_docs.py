"""The examples of ``docs/ops.md`` do what the page says."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import ops

pytestmark = pytest.mark.anyio


async def test_manual_clock_example() -> None:
    clock = ops.ManualClock()

    async def ticks() -> AsyncIterator[int]:
        for n in range(5):
            await clock.sleep_until(n * 0.2)
            yield n

    got: list[tuple[float, list[int]]] = []

    async def consume() -> None:
        async with ticks() | ops.batch(10, 0.5, clock=clock) as groups:
            async for group in groups:
                got.append((clock.now(), group))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(consume)
        await clock.advance(2)
    assert got == [(0.5, [0, 1, 2]), (0.8, [3, 4])]


async def test_clocks_follow_the_protocol() -> None:
    clock: ops.Clock = ops.SYSTEM_CLOCK
    start = clock.now()
    await clock.sleep_until(start + 0.01)
    with clock.deadline_scope(clock.now() + 0.01) as scope:
        await anyio.sleep(5)
    assert scope.cancelled_caught
    assert clock.now() - start < 2
    manual: ops.Clock = ops.ManualClock(10)
    assert manual.now() == 10


async def test_a_manual_clock_never_goes_back() -> None:
    clock = ops.ManualClock()
    with pytest.raises(ValueError, match="does not go back"):
        await clock.advance(-1)
