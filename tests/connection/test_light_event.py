"""LightEvent behaves like asyncio.Event for the connection layer's uses (wait returns a future)."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from spikard.connection.events import LightEvent

pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio"])


async def test_set_wakes_every_waiter_and_clear_resets() -> None:
    event = LightEvent(asyncio.get_running_loop())
    woken: list[int] = []

    async def waiter(index: int) -> None:
        assert await event.wait()
        woken.append(index)

    async with anyio.create_task_group() as task_group:
        for index in range(3):
            task_group.start_soon(waiter, index)
        await anyio.wait_all_tasks_blocked()
        assert not event.is_set()
        event.set()
    assert sorted(woken) == [0, 1, 2]
    assert event.is_set()
    assert await event.wait()  # already set: returns at once
    event.clear()
    assert not event.is_set()


async def test_a_cancelled_waiter_does_not_disturb_the_others() -> None:
    event = LightEvent(asyncio.get_running_loop())
    with anyio.move_on_after(0.01):
        await event.wait()
    woken: list[bool] = []

    async def waiter() -> None:
        woken.append(bool(await event.wait()))

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        event.set()
    assert woken == [True]


async def test_cancelled_waits_do_not_pile_up() -> None:
    """A consumer that times out again and again holds a bounded number of futures."""
    event = LightEvent(asyncio.get_running_loop())
    for _ in range(1000):
        with anyio.move_on_after(0):
            await event.wait()
    assert len(event._waiters or []) <= 8
    event.set()
    assert event._waiters is None
