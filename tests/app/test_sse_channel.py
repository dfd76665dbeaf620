"""``EventSourceResponse.from_channel``: a channel relayed as Server-Sent Events.

Published messages are written to each connection from the publisher's task while the
connection keeps up (direct delivery), and from the stream's backlog by its own task when it
does not. The differential test holds the direct path to the portable one (the relay with
no writer attached, which only its own task feeds): same bytes for the same publishes, in
any interleaving with reads. The rest is what a user sees: order, ``first``, the encoder,
departure, HEAD, shutdown, a stalled client, the slow-consumer policies, errors.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest

from spikard import (
    EventSourceResponse,
    HTTPConfig,
    Request,
    ServerSentEvent,
    Spikard,
    WebSocketMessage,
)
from spikard.pubsub import ChannelMessage
from spikard.sse import _ChannelRelay

from ..helpers import read_all
from .test_sse import Event, SSEClient

app = Spikard(http=HTTPConfig(write_timeout=0.5, shutdown_timeout=2))
READY = ServerSentEvent(comment="ready")


def numbered(item: ChannelMessage) -> ServerSentEvent:
    value = json.loads(item.message.as_text() or "")
    return ServerSentEvent(value["text"], event="post", id=str(value["n"]))


def broken(item: ChannelMessage) -> object:
    raise RuntimeError("the encoder failed")


async def replay(request: Request) -> AsyncIterator[object]:
    yield ServerSentEvent(comment="ready")
    yield f"resuming after {request.last_event_id or 'nothing'}"


@app.get("/plain")
async def plain(request: Request) -> EventSourceResponse:
    return EventSourceResponse.from_channel(app.broker, "plain", first=[READY], ping=None)


@app.get("/posts")
async def posts(request: Request) -> EventSourceResponse:
    return EventSourceResponse.from_channel(
        app.broker, "posts", encode=numbered, first=replay(request), ping=None
    )


@app.get("/small/{policy}")
async def small(request: Request) -> EventSourceResponse:
    return EventSourceResponse.from_channel(
        app.broker,
        "small",
        first=[READY],
        max_backlog=4,
        policy=request.path_params["policy"],
        ping=None,
    )


@app.get("/broken")
async def broken_stream(request: Request) -> EventSourceResponse:
    return EventSourceResponse.from_channel(
        app.broker, "broken", encode=broken, first=[READY], ping=None
    )


@app.get("/pinged")
async def pinged(request: Request) -> EventSourceResponse:
    return EventSourceResponse.from_channel(app.broker, "pinged", first=[READY], ping=0.1)


async def opened(port: int, target: str) -> SSEClient:
    client = await SSEClient.open(port, target)
    with anyio.fail_after(5):
        while b": ready\n\n" not in client.body:  # subscribed from here on
            assert await client._pump()
    return client


def test_from_channel_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="at least one channel"):
        EventSourceResponse.from_channel(app.broker)
    with pytest.raises(ValueError, match="channel"):
        EventSourceResponse.from_channel(app.broker, "")
    with pytest.raises(ValueError, match="policy"):
        EventSourceResponse.from_channel(app.broker, "a", policy="never")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_backlog"):
        EventSourceResponse.from_channel(app.broker, "a", max_backlog=0)


async def test_published_messages_arrive_as_events_in_order() -> None:
    async with app.test_server() as server:
        clients = [await opened(server.port, "/plain") for _ in range(3)]
        for n in range(50):
            await app.broker.publish("plain", f"message {n}")
        await app.broker.publish("plain", "two\nlines")
        await app.broker.publish("plain", WebSocketMessage.binary("bïnary".encode()))
        expected = [Event("message", f"message {n}", "") for n in range(50)]
        expected += [Event("message", "two\nlines", ""), Event("message", "bïnary", "")]
        with anyio.fail_after(5):
            for client in clients:
                assert [await client.next_event() for _ in expected] == expected
                await client.aclose()


async def test_first_and_the_encoder_shape_the_events() -> None:
    async with app.test_server() as server:
        client = await SSEClient.open(server.port, "/posts", {"last-event-id": "7"})
        with anyio.fail_after(5):
            assert await client.next_event() == Event("message", "resuming after 7", "")
            await app.broker.publish("posts", json.dumps({"n": 8, "text": "hello"}))
            assert await client.next_event() == Event("post", "hello", "8")
        await client.aclose()


async def test_the_client_leaving_ends_the_subscription() -> None:
    async with app.test_server() as server:
        client = await opened(server.port, "/plain")
        assert await app.broker.publish("plain", "one") == 1
        await client.aclose()
        with anyio.fail_after(5):
            while await app.broker.publish("plain", "anyone?") != 0:
                await anyio.sleep(0.01)


async def test_head_does_not_subscribe() -> None:
    async with (
        app.test_server() as server,
        await anyio.connect_tcp("127.0.0.1", server.port) as stream,
    ):
        await stream.send(b"HEAD /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with anyio.fail_after(5):
            data = await read_all(stream)
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert data.endswith(b"\r\n\r\n")
        assert await app.broker.publish("plain", "nobody") == 0


async def test_shutdown_ends_the_stream_with_its_last_chunk() -> None:
    async with app.test_server() as server:
        client = await opened(server.port, "/plain")
        await app.broker.publish("plain", "before")
        assert server.server is not None
        server.server.shutdown()
        with anyio.fail_after(5):
            assert await client.read_to_end() == [Event("message", "before", "")]
        assert client.clean
        await client.aclose()


async def test_a_quiet_stream_gets_keepalive_comments() -> None:
    async with app.test_server() as server:
        client = await opened(server.port, "/pinged")
        with anyio.fail_after(5):
            while b": ping\n\n" not in client.body:
                assert await client._pump()
            await app.broker.publish("pinged", "after a ping")
            assert await client.next_event() == Event("message", "after a ping", "")
        await client.aclose()


async def test_a_stalled_client_is_dropped_and_never_holds_the_publisher() -> None:
    big = "x" * 60_000
    async with app.test_server() as server:
        stalled = await opened(server.port, "/plain")  # never reads again
        reading = await opened(server.port, "/plain")
        received = 0

        async def read_all_of_them() -> None:
            nonlocal received
            while received < 200:
                assert (await reading.next_event()).data == big
                received += 1

        with anyio.fail_after(20):
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(read_all_of_them)
                for _ in range(200):
                    with anyio.fail_after(1):  # a publish never waits for a slow client
                        await app.broker.publish("plain", big)
                    await anyio.sleep(0.01)
        # The stalled one was dropped after write_timeout (0.5 s) without progress.
        with anyio.fail_after(5):
            while await app.broker.publish("plain", "left?") != 1:
                await anyio.sleep(0.05)
        await stalled.aclose()
        await reading.aclose()


async def test_drop_oldest_skips_but_keeps_the_order() -> None:
    async with app.test_server() as server:
        client = await opened(server.port, "/small/drop_oldest")
        big = "y" * 30_000
        for n in range(300):  # far more than the kernel's buffers and the backlog of 4
            await app.broker.publish("small", f"{n} {big}")
        await app.broker.publish("small", "last")
        got: list[int] = []
        with anyio.fail_after(10):
            while (event := await client.next_event()).data != "last":
                got.append(int(event.data.split()[0]))
        assert got == sorted(set(got))  # in order, nothing twice
        assert len(got) < 300  # and some were dropped
        await client.aclose()


async def test_disconnect_ends_a_stream_that_falls_behind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="spikard")
    async with app.test_server() as server:
        client = await opened(server.port, "/small/disconnect")
        big = "z" * 30_000
        for n in range(300):
            await app.broker.publish("small", f"{n} {big}")
        with anyio.fail_after(10):
            events = await client.read_to_end()
        assert client.clean  # ended with its last chunk: the browser reconnects
        assert [int(event.data.split()[0]) for event in events] == list(range(len(events)))
        await client.aclose()
    assert [r.getMessage() for r in caplog.records if "too slow" in r.getMessage()] == [
        "ending an event stream: subscriber too slow: its backlog of 4 messages was full "
        "when a message for 'small' arrived (policy 'disconnect')"
    ]


async def test_an_encoder_that_raises_ends_the_stream_not_the_publisher(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with app.test_server() as server:
        client = await opened(server.port, "/broken")
        assert await app.broker.publish("broken", "boom") == 1
        with anyio.fail_after(5):
            assert await client.read_to_end() == []
        assert not client.clean  # cut off: the client must not take it as a whole stream
        await client.aclose()
    raised = [r for r in caplog.records if r.exc_info and "raised" in r.getMessage()]
    assert len(raised) == 1
    assert "the encoder failed" in str(raised[0].exc_info[1])  # type: ignore[index]


# ---- the direct path against the portable one ----------------------------------------------


def scripts(count: int, seed: int) -> list[list[tuple[str, str]]]:
    """Random sequences of publishes and reads, with messages of random sizes and shapes."""
    rng = random.Random(seed)
    shapes = ["a", "two\nlines", "crlf\r\nend", "", "é" * 3, "x" * 70_000]
    found = []
    for _ in range(count):
        steps = []
        for n in range(rng.randint(1, 30)):
            steps.append(("publish", f"{n}:{rng.choice(shapes)}"))
            if rng.random() < 0.3:
                steps.append(("read", ""))
        found.append(steps)
    return found


async def play(script: list[tuple[str, str]]) -> bytes:
    """The body bytes a client reads for ``script``, through to a clean end at shutdown."""
    async with app.test_server() as server:
        client = await opened(server.port, "/plain")
        published = 0
        with anyio.fail_after(10):
            for action, text in script:
                if action == "publish":
                    await app.broker.publish("plain", text)
                    published += 1
                else:
                    await anyio.lowlevel.checkpoint()
                    await client._pump()  # take whatever h11 gives next
            while len(client.received) + len(client.pending) < published:
                await client._pump()
        assert server.server is not None
        server.server.shutdown()
        with anyio.fail_after(5):
            await client.read_to_end()
        assert client.clean
        await client.aclose()
        return bytes(client.body)


async def test_direct_delivery_writes_what_the_portable_path_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    all_scripts = scripts(8, seed=20261204)
    direct = [await play(script) for script in all_scripts]
    monkeypatch.setattr(_ChannelRelay, "attach_writer", lambda self, writer: None)
    portable = [await play(script) for script in all_scripts]
    assert direct == portable
    for script, body in zip(all_scripts, direct, strict=True):
        expected = "".join(
            "".join(f"data: {line}\n" for line in text.replace("\r\n", "\n").split("\n")) + "\n"
            for action, text in script
            if action == "publish"
        )
        assert body == b": ready\n\n" + expected.encode()
