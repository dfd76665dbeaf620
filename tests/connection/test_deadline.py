"""The light move-on-after deadline behaves as ``anyio.move_on_after`` for future-only blocks."""

from __future__ import annotations

import asyncio
import sys

import anyio
import pytest

from spikard.connection.deadline import move_on_after

pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio"])


async def test_an_expired_deadline_stops_the_block_and_nothing_after_it() -> None:
    loop = asyncio.get_running_loop()
    with move_on_after(0.05, loop) as deadline:
        await loop.create_future()  # never resolved
    assert deadline.cancelled_caught
    await asyncio.sleep(0.01)  # the task is not left cancelled
    current = asyncio.current_task()
    assert current is not None
    if sys.version_info >= (3, 11):  # anyio's scope on 3.10, which has no cancel counting
        assert current.cancelling() == 0


async def test_a_block_that_ends_in_time_is_not_stopped() -> None:
    loop = asyncio.get_running_loop()
    with move_on_after(0.05, loop) as deadline:
        await asyncio.sleep(0.001)
    assert not deadline.cancelled_caught
    await asyncio.sleep(0.1)  # past the deadline: no late cancellation


async def test_cancel_from_another_task_stops_the_block() -> None:
    loop = asyncio.get_running_loop()
    scopes = []

    async def read() -> None:
        with move_on_after(10, loop) as deadline:
            scopes.append(deadline)
            await loop.create_future()

    task = loop.create_task(read())
    await asyncio.sleep(0.01)
    scopes[0].cancel()
    await asyncio.wait_for(task, 1)
    assert scopes[0].cancelled_caught


async def test_moving_the_deadline_extends_the_block() -> None:
    loop = asyncio.get_running_loop()
    with move_on_after(0.05, loop) as deadline:
        deadline.deadline = loop.time() + 0.3
        await asyncio.sleep(0.15)
    assert not deadline.cancelled_caught


@pytest.mark.parametrize("outer_after", [0.0, 0.02, 0.05])
async def test_an_outer_cancellation_is_not_lost(outer_after: float) -> None:
    """anyio's cancellation is level-triggered: it reaches the next await if not this one."""
    loop = asyncio.get_running_loop()
    with anyio.CancelScope() as outer:
        with move_on_after(0.02, loop):
            loop.call_later(outer_after, outer.cancel)
            await loop.create_future()
        await anyio.sleep(1)
        pytest.fail("the outer scope's cancellation was lost")
    assert outer.cancelled_caught
