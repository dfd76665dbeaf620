"""The Redis broker against a real ``redis-server`` (see conftest.py); asyncio only.

Two broker instances stand in for two worker processes. The server is killed and
restarted on the same port to prove reconnection, and a broker in a child process is
SIGKILLed to prove that presence expires.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from spikard import WebSocketMessage
from spikard.pubsub import BrokerUnavailable, SubscriberTooSlow, Subscription

from .conftest import RedisServer, eventually, free_port

redis_asyncio = pytest.importorskip("redis.asyncio", reason="redis-py is not installed")
from spikard.pubsub.redis import RedisBroker  # noqa: E402

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])
"""redis-py's client is asyncio-based, so every test but one pins asyncio."""

TIMEOUT = 10
FAST: dict[str, Any] = {
    "timeout": 2.0,
    "subscribe_timeout": 5.0,
    "reconnect_delay": 0.02,
    "max_reconnect_delay": 0.2,
}


@asynccontextmanager
async def brokers(url: str, count: int = 2, **options: Any) -> AsyncIterator[list[RedisBroker]]:
    """``count`` started brokers on ``url``: one per pretend worker process."""
    async with AsyncExitStack() as stack:
        started = [
            await stack.enter_async_context(RedisBroker(url, **{**FAST, **options}))
            for _ in range(count)
        ]
        yield started


@asynccontextmanager
async def raw_client(url: str) -> AsyncIterator[Any]:
    client = redis_asyncio.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def next_message(subscription: Subscription) -> WebSocketMessage:
    with anyio.fail_after(TIMEOUT):
        return (await anext(subscription)).message


@contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    """SIGSTOP the server for the block: it reads and answers nothing until SIGCONT."""
    process = server.process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + TIMEOUT
        # Wait until it is really stopped (state T), so that nothing sent from now is read.
        while Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
            assert time.monotonic() < deadline, "redis-server did not stop"
            time.sleep(0.001)
        yield
    finally:
        os.kill(process.pid, signal.SIGCONT)


@asyncio_only
async def test_delivery_across_brokers(anyio_backend: str, redis_server: RedisServer) -> None:
    async with brokers(redis_server.url) as (first, second):
        async with first.subscribe("room") as on_first, second.subscribe("room") as on_second:
            assert await first.publish("room", "hello") == 2  # two subscribed processes
            assert await next_message(on_first) == WebSocketMessage.text("hello")
            assert await next_message(on_second) == WebSocketMessage.text("hello")
            for index in range(50):
                await second.publish("room", str(index))
            received = [(await next_message(on_first)).as_text() for _ in range(50)]
            assert received == [str(index) for index in range(50)]  # one publisher's order
        assert await first.publish("room", "nobody") == 0


@asyncio_only
async def test_text_binary_and_close_survive_the_trip(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    payloads = [
        WebSocketMessage.text("héllo ✓"),
        WebSocketMessage.binary(bytes(range(256))),
        WebSocketMessage.text(""),
        WebSocketMessage.binary(b""),
        WebSocketMessage.close(4000, "room closed"),
    ]
    async with brokers(redis_server.url) as (first, second), second.subscribe("c") as received:
        for message in payloads:
            await first.publish("c", message)
        assert [await next_message(received) for _ in payloads] == payloads
        async with raw_client(redis_server.url) as client:  # a foreign publisher
            await client.publish("spikard:c", "from redis-cli")
        assert await next_message(received) == WebSocketMessage.text("from redis-cli")


@asyncio_only
async def test_one_subscriber_connection_per_process(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    async with brokers(redis_server.url, count=1) as (broker,), AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(broker.subscribe(f"room-{index % 25}"))
            for index in range(100)
        ]
        async with raw_client(redis_server.url) as client:
            clients = await client.client_list()
            names = [entry["name"] for entry in clients if broker.node_id in entry["name"]]
            assert names.count(broker.subscriber_client_name) == 1
            assert len(names) <= 1 + 8  # the subscriber + the bounded publish pool
            numsub = await client.pubsub_numsub("spikard:room-0", "spikard:room-24")
            assert [count for _, count in numsub] == [1, 1]
            await broker.publish("room-3", "x")
            assert await next_message(subscriptions[3]) == WebSocketMessage.text("x")
            assert await next_message(subscriptions[28]) == WebSocketMessage.text("x")
            await stack.aclose()  # leave every subscription: the channels are unsubscribed

            async def unsubscribed() -> bool:  # UNSUBSCRIBE was sent; Redis applies it soon
                return bool(await client.pubsub_channels("spikard:*") == [])

            await eventually(unsubscribed)


@asyncio_only
async def test_subscribe_waits_for_its_own_confirmation(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    """A subscription that leaves before Redis confirmed it does not confirm the next one.

    Each round: a subscription sends SUBSCRIBE and leaves (UNSUBSCRIBE) before Redis answers;
    the late answer to that first SUBSCRIBE arrives; then a new subscription to the same
    channel is entered while Redis is frozen, so it can only be entered after Redis runs
    again and answers its own SUBSCRIBE; then a message published in it must arrive.
    """
    rounds = 40
    early: list[int] = []  # rounds whose subscribe() returned while Redis was frozen
    lost: list[int] = []  # rounds whose message published after subscribe() was lost
    redis_is_frozen = False
    async with brokers(redis_server.url) as (publisher, worker):

        async def leave_at_once() -> None:
            async with worker.subscribe("room"):
                pytest.fail("entered while Redis was frozen")

        async def subscribe_and_publish(round_index: int) -> None:
            async with worker.subscribe("room") as subscription:
                if redis_is_frozen:
                    early.append(round_index)
                text = str(round_index)
                delivered = await publisher.publish("room", text) == 1
                if not delivered or (await next_message(subscription)).as_text() != text:
                    lost.append(round_index)

        with anyio.fail_after(30):
            for index in range(rounds):
                with frozen(redis_server):  # SUBSCRIBE and UNSUBSCRIBE, both unanswered
                    async with anyio.create_task_group() as task_group:
                        task_group.start_soon(leave_at_once)
                        await anyio.sleep(0.01)  # it sent SUBSCRIBE and waits
                        task_group.cancel_scope.cancel()  # leaves: UNSUBSCRIBE sent
                await anyio.sleep(0.02)  # Redis answers both; the reader reads the answers

                async with anyio.create_task_group() as task_group:
                    with frozen(redis_server):
                        redis_is_frozen = True
                        task_group.start_soon(subscribe_and_publish, index)
                        await anyio.sleep(0.02)  # its SUBSCRIBE waits in Redis's socket
                        redis_is_frozen = False
    assert (early, lost) == ([], []), (
        f"of {rounds} rounds, {len(early)} entered subscribe() before Redis could confirm "
        f"it and {len(lost)} lost the message published after that"
    )


@asyncio_only
async def test_slow_consumer_policies_apply_to_redis_deliveries(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    async with (
        brokers(redis_server.url) as (publisher, worker),
        worker.subscribe("c", max_backlog=2, policy="disconnect") as slow,
        worker.subscribe("c", max_backlog=2) as dropping,
        worker.subscribe("c", max_backlog=10) as fast,
    ):
        for index in range(5):
            await publisher.publish("c", str(index))
        assert [(await next_message(fast)).as_text() for _ in range(5)] == list("01234")
        with anyio.fail_after(TIMEOUT), pytest.raises(SubscriberTooSlow):
            await anext(slow)
        assert [(await next_message(dropping)).as_text() for _ in range(2)] == ["3", "4"]
        assert dropping.statistics().dropped == 3


@asyncio_only
async def test_delivery_resumes_after_redis_restarts(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    async with brokers(redis_server.url) as (publisher, worker), worker.subscribe("room") as sub:
        await publisher.publish("room", "before")
        assert await next_message(sub) == WebSocketMessage.text("before")

        redis_server.kill()
        await eventually(lambda: not worker.connected)  # the reader notices the reset at once
        with pytest.raises(BrokerUnavailable, match="cannot publish"):
            await publisher.publish("room", "lost")
        with pytest.raises(BrokerUnavailable):
            await worker.join("lobby", "alice")

        # A subscription made during the outage waits for the reconnect.
        async with anyio.create_task_group() as task_group:
            late_messages: list[WebSocketMessage] = []

            async def subscribe_late() -> None:
                async with worker.subscribe("late") as late:
                    late_messages.append(await next_message(late))

            task_group.start_soon(subscribe_late)
            await anyio.sleep(0.1)
            redis_server.start()  # same port, empty: nothing survived but the brokers
            await eventually(lambda: worker.connected)

            async def welcomed() -> bool:
                return await publisher.publish("late", "welcome") > 0

            await eventually(welcomed)
        assert late_messages == [WebSocketMessage.text("welcome")]

        assert await publisher.publish("room", "after") == 1
        assert await next_message(sub) == WebSocketMessage.text("after")
        assert worker.reconnects == 1
        assert not sub.closed


@asyncio_only
async def test_subscribing_during_an_outage_is_bounded(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    async with brokers(redis_server.url, count=1, subscribe_timeout=0.2) as (broker,):
        redis_server.kill()
        await eventually(lambda: not broker.connected)
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="did not confirm the subscription"):
            async with broker.subscribe("room"):
                pass
        assert time.monotonic() - started < 1
        failures: list[BaseException] = []

        async def subscribe() -> None:
            try:
                async with broker.subscribe("room"):
                    pass
            except BrokerUnavailable as exc:
                failures.append(exc)

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(subscribe)
            await anyio.wait_all_tasks_blocked()
            await broker.aclose()  # wakes the subscription waiting for Redis
        assert len(failures) == 1
        assert "closed" in str(failures[0])


@asyncio_only
async def test_a_silent_server_is_detected_by_ping(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    process = redis_server.process
    assert process is not None
    async with (
        brokers(redis_server.url, health_check_interval=0.1) as (publisher, worker),
        worker.subscribe("room") as sub,
    ):
        await anyio.sleep(0.3)  # idle: PINGs are answered, nothing happens
        assert worker.connected
        os.kill(process.pid, signal.SIGSTOP)
        try:
            await eventually(lambda: not worker.connected)  # two silent intervals: lost
        finally:
            os.kill(process.pid, signal.SIGCONT)
        await eventually(lambda: worker.connected)
        await publisher.publish("room", "back")
        assert await next_message(sub) == WebSocketMessage.text("back")


@asyncio_only
async def test_unreachable_redis_fails_at_startup(anyio_backend: str) -> None:
    port = free_port()
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0", timeout=2.0)
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable, match=f"cannot reach Redis at redis://127.0.0.1:{port}"):
        await broker.start()
    assert time.monotonic() - started < 2
    await broker.aclose()
    secret = RedisBroker(f"redis://user:hunter2@127.0.0.1:{port}/0", timeout=2.0)
    with pytest.raises(BrokerUnavailable) as caught:
        await secret.start()
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_is_refused_clearly(anyio_backend: str) -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0")
    with pytest.raises(RuntimeError, match="asyncio only"):
        await broker.start()


# ---- presence ------------------------------------------------------------------------------


@asyncio_only
async def test_presence_across_brokers(anyio_backend: str, redis_server: RedisServer) -> None:
    async with brokers(redis_server.url) as (first, second):
        await first.join("lobby", "alice", {"name": "Alice"})
        await second.join("lobby", "bob")
        assert await first.members("lobby") == {"alice": {"name": "Alice"}, "bob": None}
        await second.leave("lobby", "bob")
        assert await first.members("lobby") == {"alice": {"name": "Alice"}}
        async with second.presence("lobby", "carol", [1, 2]):
            assert await first.members("lobby") == {"alice": {"name": "Alice"}, "carol": [1, 2]}
        assert await second.members("lobby") == {"alice": {"name": "Alice"}}
        await first.aclose()  # a clean shutdown removes its members at once
        assert await second.members("lobby") == {}


@asyncio_only
async def test_presence_repairs_itself_after_redis_lost_it(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    async with brokers(redis_server.url, presence_ttl=0.6) as (first, second):
        await first.join("lobby", "alice")
        async with raw_client(redis_server.url) as client:
            await client.flushall()  # like a Redis restart without persistence
        assert await second.members("lobby") == {}

        async def alice_is_back() -> bool:  # the next heartbeat (every 0.2 s) rewrites her
            return await second.members("lobby") == {"alice": None}

        await eventually(alice_is_back)


@asyncio_only
async def test_members_skip_entries_spikard_did_not_write(
    anyio_backend: str, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with brokers(redis_server.url) as (first, second):
        await first.join("lobby", "alice", {"name": "Alice"})
        await second.join("lobby", "bob")
        node = first.node_id.encode()
        foreign = {
            b"plain": b"written by another tool",  # no node id
            b"not-json": node + b"\n{secret: 1",  # a live node, then no JSON
            b"not-utf8": node + b"\n\xff\xfe secret",
            b"\xffbad-field": node + b"\nnull",
        }
        async with raw_client(redis_server.url) as client:
            await client.hset("spikard:presence:lobby", mapping=foreign)
            with caplog.at_level(logging.WARNING, logger="spikard.pubsub"):
                members = await second.members("lobby")
            assert members == {"alice": {"name": "Alice"}, "bob": None}
            warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
            assert len(warnings) == 1  # one warning per call, whatever the number of entries
            text = warnings[0].getMessage()
            assert "'spikard:presence:lobby'" in text
            for field in ("'plain'", "'not-json'", "'not-utf8'", "b'\\xffbad-field'"):
                assert field in text
            assert "secret" not in text  # never the values
            assert "another tool" not in text
            # Foreign entries are skipped, not deleted: spikard does not own them.
            assert set(await client.hkeys("spikard:presence:lobby")) >= set(foreign)
        caplog.clear()
        await first.leave("lobby", "alice")
        await second.leave("lobby", "bob")
        assert await first.members("lobby") == {}


CRASHING_WORKER = """
import sys, time, anyio
from spikard.pubsub.redis import RedisBroker

async def main() -> None:
    async with RedisBroker(sys.argv[1], presence_ttl=float(sys.argv[2])) as broker:
        await broker.join("lobby", "ghost", {"pid": 1})
        print("joined", flush=True)
        await anyio.sleep(60)

anyio.run(main)
"""


@asyncio_only
async def test_members_of_a_crashed_process_expire(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    ttl = 1.0
    async with brokers(redis_server.url, count=1, presence_ttl=ttl) as (observer,):
        await observer.join("lobby", "alice")
        process = await anyio.open_process(
            [sys.executable, "-c", CRASHING_WORKER, redis_server.url, str(ttl)]
        )
        try:
            assert process.stdout is not None
            with anyio.fail_after(TIMEOUT):
                assert b"joined" in await process.stdout.receive()
            assert set(await observer.members("lobby")) == {"alice", "ghost"}
            process.kill()  # SIGKILL: no clean leave, no more heartbeats
            killed = time.monotonic()

            async def ghost_gone() -> bool:
                return "ghost" not in await observer.members("lobby")

            await eventually(ghost_gone)
            assert time.monotonic() - killed <= ttl + 1.0
            assert await observer.members("lobby") == {"alice": None}
        finally:
            if process.returncode is None:
                process.kill()
            with anyio.move_on_after(TIMEOUT, shield=True):
                await process.wait()
            await process.aclose()
