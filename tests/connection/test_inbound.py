"""The bounded queue between a connection's reader and its handler."""

from __future__ import annotations

import anyio
import pytest

from spikard.streams.queue import MessageQueue


async def test_items_come_out_in_order_and_close_ends_the_stream() -> None:
    queue = MessageQueue[int](4)
    for item in range(3):
        await queue.put(item)
    queue.close()
    assert [await queue.get() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(anyio.EndOfStream):
        await queue.get()
    with pytest.raises(anyio.ClosedResourceError):
        await queue.put(3)


async def test_a_full_queue_makes_the_producer_wait() -> None:
    queue = MessageQueue[int](2)
    sent: list[int] = []

    async def produce() -> None:
        for item in range(5):
            await queue.put(item)
            sent.append(item)

    async with anyio.create_task_group() as task_group:
        task_group.start_soon(produce)
        await anyio.wait_all_tasks_blocked()
        assert sent == [0, 1]  # the third put waits for room
        assert queue.statistics().current_buffer_used == 2
        assert [await queue.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert sent == [0, 1, 2, 3, 4]


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
        await queue.put("survivor's")
    assert got == ["survivor's"]


async def test_a_consumer_cancelled_while_waiting_can_wait_again() -> None:
    queue = MessageQueue[int](4)
    with anyio.move_on_after(0.01):
        await queue.get()
    async with anyio.create_task_group() as task_group:

        async def later() -> None:
            await anyio.sleep(0.01)
            await queue.put(7)

        task_group.start_soon(later)
        with anyio.fail_after(2):
            assert await queue.get() == 7


async def test_discard_drops_items_and_wakes_the_producer() -> None:
    queue = MessageQueue[int](1)
    await queue.put(1)
    async with anyio.create_task_group() as task_group:

        async def blocked_put() -> None:
            with pytest.raises(anyio.ClosedResourceError):
                await queue.put(2)

        task_group.start_soon(blocked_put)
        await anyio.wait_all_tasks_blocked()
        queue.discard()
    assert queue.statistics().current_buffer_used == 0


async def test_try_put_takes_an_item_only_while_there_is_room() -> None:
    queue = MessageQueue[int](2)
    assert queue.try_put(1)
    assert queue.try_put(2)
    assert not queue.try_put(3)  # full: the caller must wait with put()
    assert await queue.get() == 1
    assert queue.try_put(3)
    queue.close()
    with pytest.raises(anyio.ClosedResourceError):
        queue.try_put(4)
    assert [await queue.get(), await queue.get()] == [2, 3]
