"""Connection lifecycle of stream handlers: end of input, cleanup ordering, cancellation, keepalive.

The contract under test (DESIGN.md, "Lifecycle guarantees"): when the peer closes, the incoming
iterator ends; the generator's ``finally`` has run before the server closes TCP, so when a
client's ``close()`` returns, cleanup is done; a handler that never reads is cancelled when the
peer leaves; a peer that stops answering pings is closed with 1011.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
import pytest

from spikard import (
    ConnectionClosedError,
    ConnectionClosedOK,
    Spikard,
    WebSocket,
    WebSocketConfig,
)
from spikard.testing import TestServerInfo

from ..helpers import (
    close_code,
    masked_frame,
    parse_server_frames,
    read_all,
    read_until,
    upgrade_request,
    ws_connect,
)
from . import Log

# handler_grace is long so that "cancelled at once" and "cancelled after the grace" differ.
app = Spikard(websocket=WebSocketConfig(handler_grace=5.0))
events = Log()
details: dict[str, Any] = {}


@app.websocket("/loop")
async def loop(socket: WebSocket) -> AsyncIterator[str]:
    try:
        async for message in socket:
            yield message.as_text() or ""
        events.append("loop ended")
        await anyio.sleep(0.05)  # cleanup that takes a moment
        events.append("after loop")
    finally:
        events.append("finally")


@app.websocket("/slow-reader")
async def slow_reader(socket: WebSocket) -> None:
    try:
        async for message in socket:
            await anyio.sleep(0.02)
            events.append(f"got {message.as_text()}")
        events.append("loop ended")
    finally:
        events.append("finally")


@app.websocket("/never-reads")
async def never_reads(socket: WebSocket) -> None:
    await socket.accept()
    try:
        await socket.send("ready")
        await anyio.sleep_forever()
    finally:
        details["cancelled at"] = time.monotonic()
        events.append("finally")


@app.websocket("/never-reads-generator")
async def never_reads_generator(socket: WebSocket) -> AsyncIterator[str]:
    try:
        yield "ready"
        await anyio.sleep_forever()
    finally:
        details["cancelled at"] = time.monotonic()
        events.append("finally")


@app.websocket("/receive")
async def receive(socket: WebSocket) -> None:
    try:
        await socket.send("ready")  # may already fail: a peer can drop right after the 101
        while True:
            await socket.receive()
    except (ConnectionClosedOK, ConnectionClosedError) as exc:
        details["error"] = exc
    details["close"] = (socket.close_code, socket.close_reason)
    events.append("done")


@app.websocket("/slow-accept")
async def slow_accept(socket: WebSocket) -> AsyncIterator[str]:
    try:
        events.append("deciding")
        await anyio.sleep(float(socket.query_params.get("delay", "30")))  # e.g. an auth lookup
        async for message in socket:
            yield message.as_text() or ""
    finally:
        events.append("finally")


@app.websocket("/record")
async def record(socket: WebSocket) -> None:
    """Read after an optional delay; record what arrived and how the loop ended."""
    received: list[str] = []
    details["received"] = received
    try:
        await anyio.sleep(float(socket.query_params.get("delay", "0")))
        async for message in socket:
            received.append(message.as_text() or "")
        details["ending"] = "loop ended"
    except anyio.get_cancelled_exc_class():
        details["ending"] = "cancelled"
        raise


grace_app = Spikard(websocket=WebSocketConfig(handler_grace=0.2))


@grace_app.websocket("/stuck-after-loop")
async def stuck_after_loop(socket: WebSocket) -> AsyncIterator[str]:
    try:
        async for message in socket:
            yield message.as_text() or ""
        events.append("loop ended")
        await anyio.sleep(30)  # longer than any grace: must be cancelled
        events.append("not reached")  # pragma: no cover
    finally:
        events.append("finally")


keepalive_app = Spikard(websocket=WebSocketConfig(ping_interval=0.1, ping_timeout=0.2))


@keepalive_app.websocket("/echo")
async def keepalive_echo(socket: WebSocket) -> AsyncIterator[str]:
    try:
        async for message in socket:
            yield message.as_text() or ""
    finally:
        events.append("finally")


FIREHOSE = 5000


@keepalive_app.websocket("/firehose")
async def firehose(socket: WebSocket) -> AsyncIterator[str]:
    filler = "x" * 1000
    for i in range(FIREHOSE):
        yield f"{i:08d}{filler}"
    await anyio.sleep_forever()  # stay open until the client leaves


@pytest.fixture(autouse=True)
def _clear() -> None:
    events.clear()
    details.clear()


async def client_close(ws: Any, code: int = 1000, reason: str = "") -> None:
    closer = getattr(ws, "aclose", None) or ws.close
    with anyio.fail_after(5):
        await closer(code, reason)


async def raw_upgrade(server: TestServerInfo, path: str) -> anyio.abc.SocketStream:
    """Open a raw TCP connection and complete the handshake; fail on anything but 101."""
    stream = await anyio.connect_tcp("127.0.0.1", server.port)
    await stream.send(upgrade_request(path, port=server.port))
    head = await read_until(stream, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream


def text_frame(text: str) -> bytes:
    return masked_frame(0x1, text.encode())


def close_frame(code: int, reason: str = "") -> bytes:
    return masked_frame(0x8, code.to_bytes(2, "big") + reason.encode())


async def wait_for_no_connections(server: TestServerInfo) -> None:
    assert server.server is not None
    with anyio.fail_after(2):
        while server.server.connection_count:
            await anyio.sleep(0.01)


# ---- end of input and cleanup ordering -----------------------------------------------------


async def test_cleanup_has_run_when_client_close_returns() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/loop")) as ws:
            with anyio.fail_after(5):
                await ws.send("a")
                assert await ws.recv() == "a"
        # right after the client's close returned
        assert events == ["loop ended", "after loop", "finally"]
        assert ws.close_code == 1000
        await wait_for_no_connections(server)


async def test_client_close_code_is_echoed() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/loop")) as ws:
            await client_close(ws, 4000, "leaving")
        assert ws.close_code == 4000
        assert events == ["loop ended", "after loop", "finally"]


async def test_messages_queued_before_close_are_delivered_in_order() -> None:
    async with app.test_server() as server:
        stream = await raw_upgrade(server, "/slow-reader")
        await stream.send(text_frame("0") + text_frame("1") + text_frame("2"))
        # once the first is handled, all three are in the queue
        await events.wait_for(lambda log: len(log) > 0)
        await stream.send(close_frame(1000))
        with anyio.fail_after(3):
            await read_all(stream)
        await stream.aclose()
    assert events == ["got 0", "got 1", "got 2", "loop ended", "finally"]


async def test_messages_in_the_same_read_as_the_close_frame_are_delivered() -> None:
    # Three messages and the close frame arrive in one TCP segment: the driver marks the
    # connection closed before delivering them, the watcher closes the inbound channel, and
    # the messages are silently discarded.
    async with app.test_server() as server:
        stream = await raw_upgrade(server, "/slow-reader")
        await stream.send(text_frame("0") + text_frame("1") + text_frame("2") + close_frame(1000))
        with anyio.fail_after(3):
            await read_all(stream)
        await stream.aclose()
    assert events == ["got 0", "got 1", "got 2", "loop ended", "finally"]


async def test_handler_that_never_reads_is_cancelled_at_once() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/never-reads")) as ws:
            with anyio.fail_after(5):
                assert await ws.recv() == "ready"
            started = time.monotonic()
        elapsed = time.monotonic() - started
        assert events == ["finally"]
        assert details["cancelled at"] - started < 1.0  # handler_grace is 5 s
        assert elapsed < 1.0
        await wait_for_no_connections(server)


async def test_generator_that_never_reads_is_cancelled_at_once() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/never-reads-generator")) as ws:
            with anyio.fail_after(5):
                assert await ws.recv() == "ready"
            started = time.monotonic()
        assert events == ["finally"]
        assert time.monotonic() - started < 1.0


async def test_handler_that_never_reads_is_cancelled_when_tcp_drops() -> None:
    async with app.test_server() as server:
        stream = await raw_upgrade(server, "/never-reads")
        started = time.monotonic()
        await stream.aclose()
        await events.wait_for_item("finally")
        assert details["cancelled at"] - started < 1.0
        await wait_for_no_connections(server)


async def test_client_leaving_before_the_handshake_is_answered_cancels_the_handler() -> None:
    async with app.test_server() as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        await stream.send(upgrade_request("/slow-accept", port=server.port))
        await events.wait_for_item("deciding")
        await stream.aclose()
        await events.wait_for_item("finally", timeout=1.0)
        await wait_for_no_connections(server)


async def test_frames_sent_before_the_101_are_not_lost() -> None:
    async with app.test_server() as server:
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        # the client does not wait for the 101 before its first frames
        request = upgrade_request("/slow-accept?delay=0.1", port=server.port)
        await stream.send(request + text_frame("early") + text_frame("bird"))
        with anyio.fail_after(3):
            data = await read_until(stream, b"bird")
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        assert parse_server_frames(rest) == [(0x1, b"early"), (0x1, b"bird")]
        await stream.send(close_frame(1000))
        with anyio.fail_after(3):
            await read_all(stream)
        await stream.aclose()


@pytest.mark.parametrize("delay", ["0", "0.1"])
async def test_messages_and_a_close_sent_with_the_handshake_are_all_read(delay: str) -> None:
    """A close that came with the handshake ends the loop after the messages before it; it
    does not cancel the handler for never having read (it reads as soon as it can)."""
    async with app.test_server() as server:
        details.clear()
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
        request = upgrade_request(f"/record?delay={delay}", port=server.port)
        await stream.send(
            request + text_frame("a") + text_frame("b") + text_frame("c") + close_frame(1000)
        )
        with anyio.fail_after(3):
            data = await read_all(stream)
        await stream.aclose()
        assert data.startswith(b"HTTP/1.1 101")
        assert details == {"received": ["a", "b", "c"], "ending": "loop ended"}


async def test_receive_raises_connection_closed_ok_on_peer_close() -> None:
    async with app.test_server() as server:
        async with ws_connect(server.ws_url("/receive")) as ws:
            with anyio.fail_after(5):
                assert await ws.recv() == "ready"
            await client_close(ws, 4005, "later")
        assert events == ["done"]
    error = details["error"]
    assert isinstance(error, ConnectionClosedOK)
    assert (error.code, error.reason) == (4005, "later")
    assert details["close"] == (4005, "later")


async def test_receive_raises_connection_closed_error_when_tcp_drops() -> None:
    async with app.test_server() as server:
        stream = await raw_upgrade(server, "/receive")
        await stream.aclose()
        await events.wait_for_item("done")
    error = details["error"]
    assert isinstance(error, ConnectionClosedError)
    assert error.code == 1006
    assert details["close"][0] == 1006


async def test_handler_stuck_after_loop_is_cancelled_after_grace() -> None:
    async with grace_app.test_server() as server:
        started = 0.0
        async with ws_connect(server.ws_url("/stuck-after-loop")) as ws:
            with anyio.fail_after(5):
                await ws.send("x")
                assert await ws.recv() == "x"
            started = time.monotonic()
        elapsed = time.monotonic() - started
        assert events == ["loop ended", "finally"]
        assert 0.15 <= elapsed < 2.0  # handler_grace is 0.2 s


# ---- keepalive -----------------------------------------------------------------------------


async def test_client_answering_pings_stays_connected() -> None:
    async with keepalive_app.test_server() as server:
        async with ws_connect(server.ws_url("/echo"), ping_interval=None) as ws:
            await anyio.sleep(1.0)  # ten keepalive rounds
            with anyio.fail_after(2):
                await ws.send("still here")
                assert await ws.recv() == "still here"
            assert ws.close_code is None
        assert ws.close_code == 1000


async def test_silent_peer_is_closed_1011_by_keepalive() -> None:
    async with keepalive_app.test_server() as server:
        stream = await raw_upgrade(server, "/echo")
        started = time.monotonic()
        with anyio.fail_after(3):
            data = await read_all(stream)
        elapsed = time.monotonic() - started
        await stream.aclose()
        frames = parse_server_frames(data)
        opcodes = [opcode for opcode, _ in frames]
        assert 0x9 in opcodes  # at least one ping went unanswered
        assert opcodes[-1] == 0x8
        assert close_code(frames[-1][1]) == 1011
        assert elapsed < 1.0  # ping after 0.1 s, timeout 0.2 s
        await events.wait_for_item("finally")
        await wait_for_no_connections(server)


async def test_pings_answered_while_the_handler_is_busy_producing() -> None:
    # The client pings every 50 ms and gives up after 500 ms; the server pings every 100 ms
    # and gives up after 200 ms. Both must be answered while the handler produces as fast as
    # the socket drains. (max_queue=None: the client never stops reading, so its own
    # backpressure cannot delay the pongs it reads.)
    async with (
        keepalive_app.test_server() as server,
        ws_connect(
            server.ws_url("/firehose"), ping_interval=0.05, ping_timeout=0.5, max_queue=None
        ) as ws,
    ):
        with anyio.fail_after(10):
            for i in range(FIREHOSE):
                message = await ws.recv()
                assert message[:8] == f"{i:08d}"
        assert ws.close_code is None
