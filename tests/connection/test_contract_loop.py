"""The contract's loop helpers by default (anyio's), as a wrapper without its own sees them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import anyio

from spikard.app.handshake_gate import HandshakeGate
from spikard.config import WebSocketConfig
from spikard.connection.contract import WebSocketConnection


def default_connection() -> WebSocketConnection:
    # HandshakeGate keeps WebSocketConnection's time/new_event/move_on_after.
    return HandshakeGate(SimpleNamespace(request=None, config=WebSocketConfig()))  # type: ignore[arg-type]


async def test_time_is_the_event_loop_clock() -> None:
    before = anyio.current_time()
    now = default_connection().time()
    assert before <= now <= anyio.current_time()


async def test_new_event_wakes_its_waiter() -> None:
    event = default_connection().new_event()
    woken: list[bool] = []

    async def wait() -> None:
        await event.wait()
        woken.append(True)

    with anyio.fail_after(2):
        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.sleep(0.01)
            assert not woken
            event.set()
    assert woken == [True]
    assert event.is_set()


async def test_move_on_after_stops_the_block_at_its_moved_deadline() -> None:
    connection = default_connection()
    with anyio.fail_after(5):
        deadline = connection.move_on_after(0.01)
        with deadline:
            deadline.deadline = math.inf  # lifted: the block would wait forever
            deadline.deadline = connection.time() + 0.1
            await anyio.sleep_forever()
    assert deadline.cancelled_caught
