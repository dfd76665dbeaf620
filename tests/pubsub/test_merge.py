"""``merge`` on asyncio and trio: when it ends, what it closes, errors, backpressure."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import anyio
import anyio.abc
import pytest

from spikard.pubsub import ChannelMessage, MemoryBroker, merge

TIMEOUT = 5


class Tracker:
    """Records what the sources did."""

    def __init__(self) -> None:
        self.produced: dict[str, int] = {}
        self.closed: list[str] = []


async def counting(
    tracker: Tracker, name: str, count: int | None, delay: float = 0
) -> AsyncGenerator[str, None]:
    """Yield ``name:0``, ``name:1``, ... (forever when ``count`` is None)."""
    index = 0
    try:
        while count is None or index < count:
            if delay:
                await anyio.sleep(delay)
            tracker.produced[name] = index + 1
            yield f"{name}:{index}"
            index += 1
    finally:
        tracker.closed.append(name)


async def gate(event: anyio.Event, items: list[str]) -> AsyncIterator[str]:
    """Yield ``items`` once ``event`` is set."""
    await event.wait()
    for item in items:
        yield item


async def test_ends_when_the_first_source_ends_and_closes_the_others() -> None:
    tracker = Tracker()
    with anyio.fail_after(TIMEOUT):
        async with merge(
            counting(tracker, "first", 3, delay=0.01),
            counting(tracker, "endless", None, delay=0.001),
        ) as items:
            received = [item async for item in items]
        # The block has been left: every source is closed already.
        assert sorted(tracker.closed) == ["endless", "first"]
    assert [item for item in received if item.startswith("first")] == [
        "first:0",
        "first:1",
        "first:2",
    ]


async def test_until_first_exhausted_false_waits_for_every_source() -> None:
    tracker = Tracker()
    with anyio.fail_after(TIMEOUT):
        async with merge(
            counting(tracker, "a", 1),
            counting(tracker, "b", 4, delay=0.01),
            until_first_exhausted=False,
        ) as items:
            received = [item async for item in items]
    assert sorted(received) == ["a:0", "b:0", "b:1", "b:2", "b:3"]
    assert sorted(tracker.closed) == ["a", "b"]


async def test_a_secondary_source_that_ends_drops_out() -> None:
    tracker = Tracker()
    release = anyio.Event()
    with anyio.fail_after(TIMEOUT):
        async with merge(gate(release, ["late"]), counting(tracker, "short", 2)) as items:
            assert [await anext(items), await anext(items)] == ["short:0", "short:1"]
            release.set()
            assert [item async for item in items] == ["late"]


async def test_a_source_error_is_raised_as_itself_and_everything_is_closed() -> None:
    tracker = Tracker()

    async def failing() -> AsyncIterator[str]:
        yield "ok"
        raise KeyError("boom")

    async def drain() -> None:
        async with merge(counting(tracker, "endless", None, delay=0.01), failing()) as items:
            async for _ in items:
                pass

    with anyio.fail_after(TIMEOUT), pytest.raises(KeyError, match="boom"):  # not a group
        await drain()
    assert tracker.closed == ["endless"]


async def test_an_error_in_the_block_propagates_as_itself() -> None:
    tracker = Tracker()

    async def fail_inside() -> None:
        async with merge(counting(tracker, "endless", None)) as items:
            await anext(items)
            raise LookupError("mine")

    with anyio.fail_after(TIMEOUT), pytest.raises(LookupError, match="mine"):
        await fail_inside()
    assert tracker.closed == ["endless"]


async def test_breaking_out_closes_the_sources() -> None:
    tracker = Tracker()
    with anyio.fail_after(TIMEOUT):
        async with merge(counting(tracker, "a", None), counting(tracker, "b", None)) as items:
            async for _ in items:
                break
    assert sorted(tracker.closed) == ["a", "b"]


async def test_sources_are_not_read_ahead() -> None:
    tracker = Tracker()
    with anyio.fail_after(TIMEOUT):
        async with merge(counting(tracker, "a", None), counting(tracker, "b", None)) as items:
            for _ in range(10):
                await anext(items)
            await anyio.wait_all_tasks_blocked()
            # Each source holds at most one item waiting for the consumer.
            assert sum(tracker.produced.values()) <= 10 + 2


async def test_merge_is_an_async_context_manager_only() -> None:
    tracker = Tracker()
    source = counting(tracker, "a", 1)
    with pytest.raises(TypeError, match="async with merge"):
        async for _ in merge(source):
            pass
    await source.aclose()
    with pytest.raises(ValueError, match="at least one source"):
        merge()


async def test_non_iterable_source_fails_in_the_consumer() -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(TypeError):
        async with merge(42) as items:  # type: ignore[call-overload]
            await anext(items)


async def test_merge_a_subscription_with_another_stream() -> None:
    release = anyio.Event()
    async with MemoryBroker() as broker, broker.subscribe("room") as subscription:
        with anyio.fail_after(TIMEOUT):
            async with merge(gate(release, ["from the socket"]), subscription) as items:
                await broker.publish("room", "from the room")
                first = await anext(items)
                release.set()
                second = await anext(items)
                assert [item async for item in items] == []
        assert isinstance(first, ChannelMessage)
        assert first.message.as_text() == "from the room"
        assert second == "from the socket"
        assert subscription.closed  # merge closed it
        assert await broker.publish("room", "x") == 0


async def relay(broker: MemoryBroker, release: anyio.Event) -> AsyncGenerator[str, None]:
    """A generator that yields from inside ``merge``, like a stream handler does."""
    async with (
        broker.subscribe("room") as subscription,
        merge(gate(release, ["end"]), subscription.messages()) as items,
    ):
        yield "ready"
        async for item in items:
            yield item if isinstance(item, str) else f"room:{item.as_text()}"


async def test_yielding_inside_merge_from_a_generator() -> None:
    release = anyio.Event()
    async with MemoryBroker() as broker:
        with anyio.fail_after(TIMEOUT):
            async with aclosing(relay(broker, release)) as stream:
                assert await anext(stream) == "ready"
                assert await broker.publish("room", "hi") == 1
                assert await anext(stream) == "room:hi"
                await anyio.sleep(0.01)  # the consumer works while the generator is suspended
                await broker.publish("room", "again")
                assert await anext(stream) == "room:again"
            # Closed early (at a yield): merge's tasks are gone and the subscription too.
            assert await broker.publish("room", "x") == 0


async def test_cancelling_a_consumer_suspended_at_a_yield() -> None:
    release = anyio.Event()
    async with MemoryBroker() as broker:
        with anyio.fail_after(TIMEOUT):
            with anyio.move_on_after(0.05):
                async with aclosing(relay(broker, release)) as stream:
                    assert await anext(stream) == "ready"
                    assert await broker.publish("room", "hi") == 1
                    assert await anext(stream) == "room:hi"
                    await anyio.sleep_forever()  # cancelled here, between two items
            assert await broker.publish("room", "x") == 0
