"""Presence with the in-memory broker (exact), on asyncio and trio."""

from __future__ import annotations

import math

import anyio
import pytest

from spikard.pubsub import MemoryBroker, validate_member_id


async def test_join_leave_members() -> None:
    async with MemoryBroker() as broker:
        assert await broker.members("lobby") == {}
        await broker.join("lobby", "alice", {"name": "Alice", "tags": ("a", "b")})
        await broker.join("lobby", "bob")
        await broker.join("kitchen", "alice")
        assert await broker.members("lobby") == {
            "alice": {"name": "Alice", "tags": ["a", "b"]},  # JSON round trip, as with Redis
            "bob": None,
        }
        await broker.join("lobby", "bob", 7)  # joining again replaces the info
        assert (await broker.members("lobby"))["bob"] == 7
        await broker.leave("lobby", "alice")
        await broker.leave("lobby", "nobody")
        await broker.leave("cellar", "alice")
        assert await broker.members("lobby") == {"bob": 7}
        assert await broker.members("kitchen") == {"alice": None}


async def test_members_returns_a_copy() -> None:
    async with MemoryBroker() as broker:
        await broker.join("lobby", "alice", {"score": 1})
        members = await broker.members("lobby")
        members["alice"]["score"] = 99
        members["mallory"] = None
        assert await broker.members("lobby") == {"alice": {"score": 1}}


async def test_presence_block_leaves_on_exit_and_on_cancel() -> None:
    async with MemoryBroker() as broker:
        async with broker.presence("lobby", "alice", {"n": 1}):
            assert await broker.members("lobby") == {"alice": {"n": 1}}
        assert await broker.members("lobby") == {}
        with anyio.move_on_after(0.02):
            async with broker.presence("lobby", "bob"):
                await anyio.sleep_forever()
        assert await broker.members("lobby") == {}


async def test_closing_the_broker_forgets_presence() -> None:
    broker = MemoryBroker()
    async with broker:
        await broker.join("lobby", "alice")
    await broker.leave("lobby", "alice")  # after close: nothing to do, no error
    async with MemoryBroker() as fresh:
        assert await fresh.members("lobby") == {}


async def test_presence_arguments_are_checked() -> None:
    async with MemoryBroker() as broker:
        with pytest.raises(TypeError, match="JSON-serializable"):
            await broker.join("lobby", "alice", {"when": object()})  # type: ignore[dict-item]
        with pytest.raises(TypeError, match="JSON-serializable"):
            await broker.join("lobby", "alice", math.nan)
        with pytest.raises(ValueError, match="member id name must not be empty"):
            await broker.join("lobby", "")
        with pytest.raises(ValueError, match="control characters"):
            await broker.join("lobby", "a\nb")
        with pytest.raises(ValueError, match="channel name"):
            await broker.members("two words")
        with pytest.raises(ValueError, match="control characters"):
            broker.presence("lobby", "tab\t")
        assert await broker.members("lobby") == {}
    assert validate_member_id("Alice Smith") == "Alice Smith"
