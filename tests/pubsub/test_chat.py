"""A chat handler built on ``merge(socket, subscription)``, over the real server stack.

The handler is an async generator that yields from inside ``merge``: messages from the
room go to the client, messages from the client are published to the room. With the
in-memory broker it runs on asyncio and trio; with Redis, two test servers that share one
``redis-server`` stand in for two worker processes, and clients on each talk to each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pytest

from spikard import Spikard, WebSocket, WebSocketMessage
from spikard.pubsub import Broker, ChannelMessage, MemoryBroker, SubscriberTooSlow, merge

from ..helpers import ws_connect
from .conftest import RedisServer, eventually

TIMEOUT = 10


def chat_app(broker: Broker) -> Spikard:
    app = Spikard()

    @app.websocket("/chat/{room}")
    async def chat(socket: WebSocket) -> AsyncIterator[WebSocketMessage | str]:
        room = f"chat:{socket.path_params['room']}"
        name = socket.query_params.get("name") or "anonymous"
        # Accept before merge reads the socket in another task: the lazy accept of the first
        # read and the one of the first send must not race.
        await socket.accept()
        try:
            async with (
                broker.subscribe(room, max_backlog=64, policy="disconnect") as subscription,
                broker.presence(room, name),
                merge(socket, subscription) as events,
            ):
                yield f"joined {','.join(sorted(await broker.members(room)))}"
                async for event in events:
                    if isinstance(event, ChannelMessage):
                        yield event.message
                    elif (text := event.as_text()) is not None:
                        await broker.publish(room, f"{name}: {text}")
        except SubscriberTooSlow as exc:
            yield WebSocketMessage.close(exc.close_code, "too slow")

    return app


async def receive(client: Any) -> str:
    with anyio.fail_after(TIMEOUT):
        message = await client.recv()
    assert isinstance(message, str)
    return message


async def converse(alice_url: str, bob_url: str, broker: Broker) -> None:
    async with AsyncExitStack() as stack:
        alice = await stack.enter_async_context(ws_connect(alice_url + "?name=alice"))
        assert await receive(alice) == "joined alice"
        bob = await stack.enter_async_context(ws_connect(bob_url + "?name=bob"))
        assert await receive(bob) == "joined alice,bob"
        await alice.send("hi bob")
        assert await receive(alice) == "alice: hi bob"
        assert await receive(bob) == "alice: hi bob"
        await bob.send("hi alice")
        assert await receive(bob) == "bob: hi alice"
        assert await receive(alice) == "bob: hi alice"

    async def everybody_left() -> bool:  # both handlers ended: presence is empty again
        return not await broker.members("chat:lobby")

    await eventually(everybody_left)


async def test_chat_on_one_server_with_the_memory_broker() -> None:
    async with MemoryBroker() as broker, chat_app(broker).test_server() as server:
        url = server.ws_url("/chat/lobby")
        await converse(url, url, broker)
        assert await broker.publish("chat:lobby", "anyone?") == 0  # every subscription ended


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_chat_across_two_servers_sharing_redis(
    anyio_backend: str, redis_server: RedisServer
) -> None:
    from spikard.pubsub.redis import RedisBroker

    async with (
        RedisBroker(redis_server.url, timeout=2.0) as first_broker,
        RedisBroker(redis_server.url, timeout=2.0) as second_broker,
        chat_app(first_broker).test_server() as first,
        chat_app(second_broker).test_server() as second,
    ):
        assert first.port != second.port
        await converse(first.ws_url("/chat/lobby"), second.ws_url("/chat/lobby"), second_broker)
