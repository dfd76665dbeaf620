"""The server-wide timer task: members are ticked, leave cleanly, and cannot break it."""

from __future__ import annotations

import itertools
import logging

import anyio
import pytest

from spikard.connection.heartbeat import Heartbeat


class Member:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[float] = []
        self.fail = fail
        self.told = 0

    def timer_failed(self) -> None:
        self.told += 1

    def on_timer(self, now: float) -> None:
        self.calls.append(now)
        if self.fail:
            raise RuntimeError("boom")


async def test_members_are_ticked_four_times_per_period() -> None:
    heartbeat = Heartbeat()
    member = Member()
    async with anyio.create_task_group() as task_group:
        await task_group.start(heartbeat.run)
        heartbeat.add(member, 0.2)
        await anyio.sleep(0.5)
        task_group.cancel_scope.cancel()
    gaps = [later - earlier for earlier, later in itertools.pairwise(member.calls)]
    assert len(member.calls) >= 6
    assert max(gaps) < 0.2


async def test_a_member_that_left_is_not_called_again() -> None:
    heartbeat = Heartbeat()
    member = Member()
    async with anyio.create_task_group() as task_group:
        await task_group.start(heartbeat.run)
        heartbeat.add(member, 0.04)
        await anyio.sleep(0.05)
        heartbeat.discard(member)
        count = len(member.calls)
        await anyio.sleep(0.1)
        task_group.cancel_scope.cancel()
    assert count >= 1
    assert len(member.calls) == count


async def test_a_member_joining_after_all_left_is_ticked() -> None:
    heartbeat = Heartbeat()
    first, second = Member(), Member()
    async with anyio.create_task_group() as task_group:
        await task_group.start(heartbeat.run)
        heartbeat.add(first, 0.04)
        await anyio.sleep(0.05)
        heartbeat.discard(first)
        await anyio.sleep(0.05)  # the heartbeat now sleeps with nobody to tick
        heartbeat.add(second, 0.04)
        await anyio.sleep(0.1)
        task_group.cancel_scope.cancel()
    assert len(second.calls) >= 2


async def test_a_failing_member_is_logged_dropped_and_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heartbeat = Heartbeat()
    bad, good = Member(fail=True), Member()
    with caplog.at_level(logging.ERROR, "spikard.websocket"):
        async with anyio.create_task_group() as task_group:
            await task_group.start(heartbeat.run)
            heartbeat.add(bad, 0.04)
            heartbeat.add(good, 0.04)
            await anyio.sleep(0.1)
            task_group.cancel_scope.cancel()
    assert len(bad.calls) == 1
    assert bad.told == 1  # it ends itself instead of running on without its timers
    assert len(good.calls) >= 3
    assert "timer of" in caplog.text
    assert "RuntimeError: boom" in caplog.text  # with its traceback


async def test_running_is_true_only_while_it_runs() -> None:
    heartbeat = Heartbeat()
    assert not heartbeat.running
    async with anyio.create_task_group() as task_group:
        await task_group.start(heartbeat.run)
        assert heartbeat.running
        task_group.cancel_scope.cancel()
    assert not heartbeat.running
