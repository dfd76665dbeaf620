"""The contract's loop helpers by default (anyio's), as a wrapper without its own sees them."""

from __future__ import annotations

import math
from types import SimpleNamespace

import anyio

from spikard.app.handshake_gate import HandshakeGate
from spikard.config import WebSocketConfig
from spikard.connection.contract import WebSocketConnection


def default_connection() -> WebSocketConnection:
    """A connection that keeps WebSocketConnection's own time/new_event/move_on_after."""
    bare = type(
        "Bare",
        (WebSocketConnection,),
        dict.fromkeys(WebSocketConnection.__abstractmethods__, None),
    )
    return bare()  # type: ignore[no-any-return]


async def test_a_handshake_gate_gives_its_inner_connections_loop() -> None:
    event, deadline = anyio.Event(), anyio.move_on_after(1.5)
    asked: list[float] = []

    def move_on_after(delay: float) -> anyio.CancelScope:
        asked.append(delay)
        return deadline

    inner = SimpleNamespace(
        request=None,
        config=WebSocketConfig(),
        time=lambda: 42.0,
        new_event=lambda: event,
        move_on_after=move_on_after,
    )
    gate = HandshakeGate(inner)  # type: ignore[arg-type]
    assert gate.time() == 42.0
    assert gate.new_event() is event
    assert gate.move_on_after(1.5) is deadline
    assert asked == [1.5]


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
