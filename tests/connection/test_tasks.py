"""LightTaskGroup keeps a task group's contract on both backends."""

from __future__ import annotations

import sys

import anyio
import pytest

from spikard.connection.tasks import LightTaskGroup

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup


async def wait_forever(stopped: anyio.Event) -> None:
    """Sleep until cancelled; then set ``stopped``."""
    try:
        await anyio.sleep_forever()
    finally:
        stopped.set()


def leaves(error: BaseException) -> list[type[BaseException]]:
    """The exception types inside ``error``: trio's nursery wraps them in a group, asyncio not."""
    nested = getattr(error, "exceptions", None)
    if nested is None:
        return [type(error)]
    return [kind for inner in nested for kind in leaves(inner)]


async def test_leaving_waits_for_every_task() -> None:
    finished: list[str] = []

    async def work(label: str, delay: float) -> None:
        await anyio.sleep(delay)
        finished.append(label)

    async with LightTaskGroup() as tasks:
        tasks.start_soon(work, "slow", 0.05)
        tasks.start_soon(work, "fast", 0.01, name="fast one")
    assert finished == ["fast", "slow"]


async def test_cancel_stops_the_tasks_that_are_left() -> None:
    stopped = anyio.Event()

    with anyio.fail_after(2):
        async with LightTaskGroup() as tasks:
            tasks.start_soon(wait_forever, stopped)
            await anyio.sleep(0.01)
            tasks.cancel()
    assert stopped.is_set()


async def test_a_failing_task_cancels_the_others_and_raises() -> None:
    cancelled = anyio.Event()

    async def fail() -> None:
        await anyio.sleep(0.01)
        raise ValueError("boom")

    async def session() -> None:
        async with LightTaskGroup() as tasks:
            tasks.start_soon(wait_forever, cancelled)
            tasks.start_soon(fail)

    with anyio.fail_after(2), pytest.raises(Exception) as raised:  # noqa: PT011 (see below)
        await session()
    assert leaves(raised.value) == [ValueError]
    assert cancelled.is_set()


async def test_cancelling_the_session_cancels_and_awaits_its_tasks() -> None:
    cleaned = anyio.Event()

    async def slow_cleanup() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.02)
            cleaned.set()

    with anyio.move_on_after(0.05) as scope:
        async with LightTaskGroup() as tasks:
            tasks.start_soon(slow_cleanup)
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert cleaned.is_set()


async def test_an_error_in_the_body_cancels_the_tasks() -> None:
    stopped = anyio.Event()

    async def session() -> None:
        async with LightTaskGroup() as tasks:
            tasks.start_soon(wait_forever, stopped)
            await anyio.sleep(0.01)
            raise KeyError("body")

    with anyio.fail_after(2), pytest.raises(Exception) as raised:  # noqa: PT011 (see below)
        await session()
    assert leaves(raised.value) == [KeyError]
    assert stopped.is_set()


async def test_every_error_is_raised_in_one_exception_group() -> None:
    async def fail(error: Exception) -> None:
        raise error

    async def session() -> None:
        async with LightTaskGroup() as tasks:
            tasks.start_soon(fail, ValueError("one"))
            tasks.start_soon(fail, KeyError("two"))

    with anyio.fail_after(2), pytest.raises(BaseExceptionGroup) as raised:
        await session()
    assert sorted(type(error).__name__ for error in raised.value.exceptions) == [
        "KeyError",
        "ValueError",
    ]
