"""The in-memory broker on asyncio and trio: fan-out, ordering, backlog policies, lifecycle.

Every test here runs on both backends (tests/conftest.py) and is bounded by ``fail_after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from spikard import WebSocketMessage
from spikard.pubsub import (
    MAX_CHANNEL_LENGTH,
    BrokerUnavailable,
    ChannelMessage,
    MemoryBroker,
    SubscriberTooSlow,
    Subscription,
    create_broker,
    validate_channel,
)

TIMEOUT = 5


async def take(subscription: Subscription, count: int) -> list[str | None]:
    """The texts of the next ``count`` messages."""
    texts: list[str | None] = []
    with anyio.fail_after(TIMEOUT):
        for _ in range(count):
            event = await anext(subscription)
            texts.append(event.message.as_text())
    return texts


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    async with MemoryBroker() as started:
        yield started


# ---- fan-out and ordering ------------------------------------------------------------------


async def test_fan_out_reaches_every_subscriber(broker: MemoryBroker) -> None:
    async with (
        broker.subscribe("news") as first,
        broker.subscribe("news") as second,
        broker.subscribe("other") as unrelated,
    ):
        assert await broker.publish("news", "hello") == 2
        assert await take(first, 1) == ["hello"]
        assert await take(second, 1) == ["hello"]
        assert unrelated.statistics().backlog == 0
    assert await broker.publish("news", "nobody listens") == 0


async def test_events_carry_channel_and_message_kind(broker: MemoryBroker) -> None:
    async with broker.subscribe("a", "b", "a") as subscription:
        assert subscription.channels == ("a", "b")
        await broker.publish("a", "text")
        await broker.publish("b", b"\x00\xff")
        await broker.publish("a", WebSocketMessage.close(4000, "bye"))
        with anyio.fail_after(TIMEOUT):
            events = [await anext(subscription) for _ in range(3)]
    assert events == [
        ChannelMessage("a", WebSocketMessage.text("text")),
        ChannelMessage("b", WebSocketMessage.binary(b"\x00\xff")),
        ChannelMessage("a", WebSocketMessage.close(4000, "bye")),
    ]


async def test_messages_view_yields_bare_messages(broker: MemoryBroker) -> None:
    async with broker.subscribe("a") as subscription:
        await broker.publish("a", "one")
        await broker.publish("a", b"two")
        messages = subscription.messages()
        with anyio.fail_after(TIMEOUT):
            assert await anext(messages) == WebSocketMessage.text("one")
            assert await anext(messages) == WebSocketMessage.binary(b"two")


async def test_each_publisher_keeps_its_order(broker: MemoryBroker) -> None:
    count = 200

    async def publisher(name: str) -> None:
        for index in range(count):
            await broker.publish("room", f"{name}:{index}")

    async with broker.subscribe("room", max_backlog=2 * count) as subscription:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(publisher, "a")
            task_group.start_soon(publisher, "b")
        received = await take(subscription, 2 * count)
    for name in ("a", "b"):
        mine = [text for text in received if text and text.startswith(f"{name}:")]
        assert mine == [f"{name}:{index}" for index in range(count)]
    # Publishing checkpoints, so two publishers in loops interleave instead of one starving.
    assert received[:count] != [f"a:{index}" for index in range(count)]


# ---- slow consumers ------------------------------------------------------------------------


async def test_drop_oldest_keeps_at_most_max_backlog(broker: MemoryBroker) -> None:
    async with (
        broker.subscribe("c", max_backlog=5) as idle,
        broker.subscribe("c", max_backlog=1000) as reader,
    ):
        for index in range(1000):
            assert await broker.publish("c", str(index)) == 2
            assert idle.statistics().backlog <= 5
        stats = idle.statistics()
        assert (stats.backlog, stats.delivered, stats.dropped) == (5, 1000, 995)
        assert await take(idle, 5) == ["995", "996", "997", "998", "999"]
        assert reader.statistics().dropped == 0
        assert await take(reader, 3) == ["0", "1", "2"]


async def test_block_makes_only_the_publisher_wait(broker: MemoryBroker) -> None:
    async with (
        broker.subscribe("c", max_backlog=2, policy="block") as slow,
        broker.subscribe("c", max_backlog=10) as fast,
    ):
        assert await broker.publish("c", "1") == 2
        assert await broker.publish("c", "2") == 2
        done = anyio.Event()
        results: list[int] = []

        async def third() -> None:
            results.append(await broker.publish("c", "3"))
            done.set()

        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(third)
                await anyio.wait_all_tasks_blocked()
                assert not done.is_set()  # the publisher waits for the full subscriber...
                assert await take(fast, 3) == ["1", "2", "3"]  # ...the others already have it
                assert await take(slow, 1) == ["1"]  # room: the publisher goes on
                await done.wait()
        assert results == [2]
        assert await take(slow, 2) == ["2", "3"]


async def test_block_publisher_is_released_when_the_subscription_closes(
    broker: MemoryBroker,
) -> None:
    results: list[int] = []
    with anyio.fail_after(TIMEOUT):
        async with broker.subscribe("c", max_backlog=1, policy="block") as slow:
            await broker.publish("c", "fills the backlog")
            async with anyio.create_task_group() as task_group:

                async def publish() -> None:
                    results.append(await broker.publish("c", "waits"))

                task_group.start_soon(publish)
                await anyio.wait_all_tasks_blocked()
                assert results == []
                await slow.aclose()
    assert results == [0]


async def test_disconnect_ends_only_the_slow_subscription(broker: MemoryBroker) -> None:
    async with (
        broker.subscribe("c", max_backlog=3, policy="disconnect") as slow,
        broker.subscribe("c", max_backlog=10, policy="disconnect") as fast,
    ):
        counts = [await broker.publish("c", str(index)) for index in range(5)]
        assert counts == [2, 2, 2, 1, 1]
        assert slow.closed
        assert slow.statistics().backlog == 0  # the backlog is freed at once
        with anyio.fail_after(TIMEOUT), pytest.raises(SubscriberTooSlow) as caught:
            await anext(slow)
        assert caught.value.close_code == 1008
        assert caught.value.channel == "c"
        assert "backlog of 3" in str(caught.value)
        with pytest.raises(SubscriberTooSlow):
            await anext(slow)  # stays failed
        assert await take(fast, 5) == ["0", "1", "2", "3", "4"]
        assert await broker.publish("c", "later") == 1


async def test_idle_subscribers_do_not_slow_publishing(broker: MemoryBroker) -> None:
    async with (
        broker.subscribe("c", max_backlog=1) as first,
        broker.subscribe("c", max_backlog=1) as second,
    ):
        with anyio.fail_after(TIMEOUT):
            for index in range(5000):
                await broker.publish("c", str(index))
        assert first.statistics().backlog == second.statistics().backlog == 1


# ---- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "with space",
        "tab\there",
        "new\nline",
        "nul\x00",
        "bell\x07",
        "nbsp\u00a0",
        "line\u2028sep",
        "x" * (MAX_CHANNEL_LENGTH + 1),
    ],
)
async def test_invalid_channel_names_are_refused(broker: MemoryBroker, name: str) -> None:
    with pytest.raises(ValueError, match="channel name"):
        validate_channel(name)
    with pytest.raises(ValueError, match="channel name"):
        await broker.publish(name, "x")
    with pytest.raises(ValueError, match="channel name"):
        broker.subscribe("ok", name)
    with pytest.raises(ValueError, match="channel name"):
        await broker.join(name, "member")


async def test_valid_channel_names(broker: MemoryBroker) -> None:
    for name in ("room:lobby", "a", "x" * MAX_CHANNEL_LENGTH, "chat/ünïcödé/42", "*?[]"):
        assert validate_channel(name) == name
        assert await broker.publish(name, "x") == 0


async def test_subscribe_arguments_are_checked(broker: MemoryBroker) -> None:
    with pytest.raises(ValueError, match="at least one channel"):
        broker.subscribe()
    with pytest.raises(ValueError, match="max_backlog"):
        broker.subscribe("c", max_backlog=0)
    with pytest.raises(ValueError, match="unknown slow-consumer policy"):
        broker.subscribe("c", policy="drop_newest")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be str"):
        await broker.publish(b"bytes", "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="WebSocketMessage, str or bytes"):
        await broker.publish("c", 42)


# ---- lifecycle -----------------------------------------------------------------------------


async def test_a_broker_must_be_started() -> None:
    broker = MemoryBroker()
    with pytest.raises(RuntimeError, match="not started"):
        await broker.publish("c", "x")
    with pytest.raises(RuntimeError, match="not started"):
        async with broker.subscribe("c"):
            pass
    await broker.start()
    with pytest.raises(RuntimeError, match="already running"):
        await broker.start()
    await broker.aclose()
    await broker.aclose()  # idempotent
    with pytest.raises(BrokerUnavailable, match="closed"):
        await broker.publish("c", "x")


async def test_a_closed_broker_starts_again_empty() -> None:
    broker = MemoryBroker()
    async with broker, broker.subscribe("c") as subscription:
        await broker.publish("c", "first life")
        assert (await anext(subscription)).message.as_text() == "first life"
    async with broker, broker.subscribe("c") as subscription:
        assert await broker.publish("c", "second life") == 1
        assert (await anext(subscription)).message.as_text() == "second life"


async def test_closing_the_broker_ends_subscriptions_after_their_backlog() -> None:
    broker = MemoryBroker()
    await broker.start()
    async with broker.subscribe("c") as subscription:
        await broker.publish("c", "last words")
        await broker.aclose()
        with anyio.fail_after(TIMEOUT):
            assert [event.message.as_text() async for event in subscription] == ["last words"]
        assert subscription.closed


async def test_closing_the_broker_releases_blocked_publishers() -> None:
    results: list[int] = []
    with anyio.fail_after(TIMEOUT):
        async with MemoryBroker() as broker, broker.subscribe("c", max_backlog=1, policy="block"):
            await broker.publish("c", "fills the backlog")
            async with anyio.create_task_group() as task_group:

                async def publish() -> None:
                    results.append(await broker.publish("c", "waits"))

                task_group.start_soon(publish)
                await anyio.wait_all_tasks_blocked()
                await broker.aclose()
    assert results == [0]


async def test_leaving_the_block_unsubscribes(broker: MemoryBroker) -> None:
    async with broker.subscribe("c") as subscription:
        assert "open" in repr(subscription)
    assert subscription.closed
    assert await broker.publish("c", "x") == 0
    with anyio.fail_after(TIMEOUT):
        assert [event async for event in subscription] == []


async def test_a_reader_waiting_on_a_subscription_can_be_cancelled(broker: MemoryBroker) -> None:
    async with broker.subscribe("c") as subscription:
        with anyio.move_on_after(0.05) as scope:
            await anext(subscription)
        assert scope.cancelled_caught
        await broker.publish("c", "after the cancel")
        assert await take(subscription, 1) == ["after the cancel"]


# ---- create_broker -------------------------------------------------------------------------


def test_create_broker_picks_the_backend() -> None:
    assert isinstance(create_broker(), MemoryBroker)
    assert isinstance(create_broker(None), MemoryBroker)
    assert isinstance(create_broker("memory://"), MemoryBroker)
    with pytest.raises(ValueError, match="unsupported broker URL"):
        create_broker("amqp://localhost")
    with pytest.raises(ValueError, match="unsupported broker URL"):
        create_broker("localhost:6379")
    with pytest.raises(TypeError, match="no options"):
        create_broker("memory://", prefix="x")


def test_create_broker_redis_url() -> None:
    pytest.importorskip("redis", reason="redis-py is not installed")
    from spikard.pubsub import RedisBroker

    broker = create_broker("redis://user:secret@127.0.0.1:6390/2", prefix="app:")
    assert isinstance(broker, RedisBroker)
    assert broker.prefix == "app:"
    assert "secret" not in repr(broker)
    with pytest.raises(ValueError, match="presence_ttl"):
        create_broker("redis://127.0.0.1", presence_ttl=0)


async def test_publish_sends_dicts_and_typed_values_as_json() -> None:
    import dataclasses

    from spikard import MemoryBroker

    @dataclasses.dataclass
    class Note:
        text: str

    async with MemoryBroker() as broker, broker.subscribe("room") as subscription:
        await broker.publish("room", {"text": "hi"})
        await broker.publish("room", Note("typed"))
        first = await anext(subscription)
        second = await anext(subscription)
    assert first.message.as_text() == '{"text":"hi"}'
    assert second.message.as_text() == '{"text":"typed"}'
