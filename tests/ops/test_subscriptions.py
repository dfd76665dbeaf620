"""Operators over a pub/sub subscription: cancel-safe, so timing needs no task."""

from __future__ import annotations

import anyio
import pytest

from spikard import ops
from spikard.pubsub import ChannelMessage, MemoryBroker

pytestmark = pytest.mark.anyio


def text(item: ChannelMessage) -> str:
    return item.message.as_text() or ""


async def test_a_subscription_batched_and_mapped() -> None:
    async with MemoryBroker() as broker, broker.subscribe("feed") as feed:
        for index in range(7):
            await broker.publish("feed", f"m{index}")
        groups = feed | ops.batch(3, 0.05)  # no `async with`: a subscription is cancel-safe
        seen: list[str] = []
        with anyio.fail_after(5):
            while len(seen) < 7:
                seen += [text(item) for item in await anext(groups)]
        assert seen == [f"m{index}" for index in range(7)]
        await groups.aclose()
        assert feed.closed  # the stage closed its source


async def test_a_slow_reader_of_a_feed_keeps_the_freshest() -> None:
    async with MemoryBroker() as broker, broker.subscribe("feed", max_backlog=1000) as feed:
        async with feed | ops.map(text) | ops.buffer(3, "drop_oldest") as fresh:
            for index in range(50):
                await broker.publish("feed", f"m{index}")
            for _ in range(50):  # the buffer's task reads on while nobody takes
                await anyio.lowlevel.checkpoint()
            with anyio.fail_after(5):
                latest = [await anext(fresh) for _ in range(3)]
            assert fresh.dropped == 47
        assert latest == ["m47", "m48", "m49"]
