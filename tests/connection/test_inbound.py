"""The bounded queue between a connection and the application that reads it."""

from __future__ import annotations

import anyio
import pytest

from spikard.connection.inbound import MessageQueue


async def test_items_come_out_in_order_and_close_ends_the_stream() -> None:
    queue = MessageQueue[int](4)
    for item in range(3):
        queue.put_nowait(item)
    queue.close()
    assert [await queue.get() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(anyio.EndOfStream):
        await queue.get()
    with pytest.raises(anyio.ClosedResourceError):
        queue.put_nowait(3)


def test_room_counts_down_to_full() -> None:
    queue = MessageQueue[int](2)
    assert queue.has_room
    assert queue.room == 2
    queue.put_nowait(1)
    assert queue.room == 1
    queue.put_nowait(2)
    assert not queue.has_room
    assert queue.statistics() == (2, 2)
    assert queue.take() == 1
    assert queue.has_room


async def test_a_waiting_consumer_is_woken_by_a_put() -> None:
    queue = MessageQueue[int](2)
    got: list[int] = []

    async def consume() -> None:
        got.append(await queue.get())

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(consume)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        queue.put_nowait(5)
    assert got == [5]


async def test_a_cancelled_consumer_leaves_the_others_waiting() -> None:
    queue = MessageQueue[str](4)
    got: list[str] = []

    async def consume() -> None:
        got.append(await queue.get())

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(consume)
        async with anyio.create_task_group() as doomed:
            doomed.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            doomed.cancel_scope.cancel()
        await anyio.wait_all_tasks_blocked()
        queue.put_nowait("survivor's")
    assert got == ["survivor's"]


async def test_a_consumer_cancelled_while_waiting_can_wait_again() -> None:
    queue = MessageQueue[int](4)
    with anyio.move_on_after(0.01):
        await queue.get()
    async with anyio.create_task_group() as task_group:

        async def later() -> None:
            await anyio.sleep(0.01)
            queue.put_nowait(7)

        task_group.start_soon(later)
        with anyio.fail_after(2):
            assert await queue.get() == 7


async def test_discard_drops_items_and_wakes_consumers() -> None:
    queue = MessageQueue[int](1)
    queue.put_nowait(1)
    queue.discard()
    assert queue.statistics().current_buffer_used == 0
    with pytest.raises(anyio.EndOfStream):
        await queue.get()
