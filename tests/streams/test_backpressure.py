"""Backpressure end to end (DESIGN.md, "Invariants"): bounded inbound queue, paced outbound.

A raw TCP client is used on purpose: it sends or withholds reads exactly as told, so the
only buffers between the handler and the client are the server's queue and the kernel's
socket buffers. Frames are masked with a zero key (valid, and free to "mask").
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import anyio.abc
import pytest

from spikard import Spikard, WebSocket, WebSocketConfig

from ..helpers import read_until, upgrade_request, ws_connect

MAX_QUEUE = 4
CHUNK = 256 * 1024
INBOUND_MESSAGES = 400  # 100 MiB: far more than socket buffers can hold
# Socket buffers on loopback are a few MiB (tcp_rmem max may reach 32 MiB): anything past
# this means the server buffers in user space without bound.
BUFFER_BOUND = 48 * 1024 * 1024

app = Spikard(websocket=WebSocketConfig(max_queue=MAX_QUEUE, ping_interval=None))
state: dict[str, object] = {}
produced = [0]


def frame(opcode: int, payload: bytes) -> bytes:
    """A client frame with a zero masking key (the payload goes out unchanged)."""
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    elif length < 1 << 16:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    return header + b"\x00\x00\x00\x00" + payload


class FrameReader:
    """Incremental parser of unmasked server frames from a byte stream."""

    def __init__(self, stream: anyio.abc.ByteStream, already_read: bytes = b"") -> None:
        self.stream = stream
        self.buffer = bytearray(already_read)

    async def _need(self, count: int) -> None:
        while len(self.buffer) < count:
            self.buffer += await self.stream.receive(1 << 20)

    async def next(self) -> tuple[int, bytes]:
        await self._need(2)
        opcode, length, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
        if length == 126:
            await self._need(4)
            length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
        elif length == 127:
            await self._need(10)
            length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
        await self._need(offset + length)
        payload = bytes(self.buffer[offset : offset + length])
        del self.buffer[: offset + length]
        return opcode, payload


@app.websocket("/lazy-reader")
async def lazy_reader(socket: WebSocket) -> AsyncIterator[str]:
    await socket.accept()
    release = state["release"]
    assert isinstance(release, anyio.Event)
    await release.wait()
    state["queued when released"] = socket.connection.queued_messages
    seen: list[int] = []
    async for message in socket:
        data = message.as_binary()
        assert data is not None
        assert len(data) == CHUNK
        seen.append(data[0] + 256 * data[-1])
        if len(seen) == INBOUND_MESSAGES:
            break
    state["seen"] = seen
    yield f"read {len(seen)}"


@app.websocket("/fast-producer")
async def fast_producer(socket: WebSocket) -> AsyncIterator[bytes]:
    payload = b"x" * (CHUNK - 4)
    for index in range(100_000):  # bounded; the client stops long before
        produced[0] = index + 1
        yield index.to_bytes(4, "big") + payload


@pytest.fixture(autouse=True)
def _clear() -> None:
    state.clear()
    produced[0] = 0


async def handshake(port: int, path: str) -> tuple[anyio.abc.SocketStream, bytes]:
    """Upgrade; return the stream and any frame bytes that came in the same read as the 101."""
    stream = await anyio.connect_tcp("127.0.0.1", port)
    await stream.send(upgrade_request(path, port=port))
    head = await read_until(stream, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return stream, head.partition(b"\r\n\r\n")[2]


async def wait_until_stalled(counter: list[int]) -> int:
    """Poll ``counter[0]`` until it stops moving for a while; return its value."""
    last = -1
    with anyio.fail_after(20):
        while counter[0] != last:
            last = counter[0]
            await anyio.sleep(0.25)
    return last


async def test_inbound_queue_is_bounded_and_sender_blocks() -> None:
    state["release"] = anyio.Event()
    async with app.test_server() as server:
        stream, _ = await handshake(server.port, "/lazy-reader")
        sent = [0]

        async def sender() -> None:
            for index in range(INBOUND_MESSAGES):
                # first and last bytes encode the index, to check order at the other end
                payload = bytes([index % 256]) * (CHUNK - 1) + bytes([index // 256])
                await stream.send(frame(0x2, payload))
                sent[0] += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            stalled_at = await wait_until_stalled(sent)
            # the client's sends block: the server stopped reading
            assert stalled_at < INBOUND_MESSAGES
            assert stalled_at * CHUNK < BUFFER_BOUND
            release = state["release"]
            assert isinstance(release, anyio.Event)
            release.set()
        # once the handler reads, everything arrives, in order
        reader = FrameReader(stream)
        with anyio.fail_after(20):
            opcode, payload = await reader.next()
        assert (opcode, payload) == (0x1, f"read {INBOUND_MESSAGES}".encode())
        await stream.aclose()
    queued = state["queued when released"]
    assert isinstance(queued, int)
    assert queued <= MAX_QUEUE
    assert state["seen"] == list(range(INBOUND_MESSAGES))


async def test_fast_producer_is_paced_by_a_slow_client() -> None:
    async with app.test_server() as server:
        stream, early = await handshake(server.port, "/fast-producer")
        started = time.monotonic()
        stalled_at = await wait_until_stalled(produced)
        assert time.monotonic() - started < 15
        # the generator is not pulled past what the socket buffers hold
        assert 0 < stalled_at * CHUNK < BUFFER_BOUND
        # reading resumes production, and messages come in order, none skipped
        reader = FrameReader(stream, early)
        with anyio.fail_after(20):
            for expected in range(stalled_at + 10):
                opcode, payload = await reader.next()
                assert opcode == 0x2
                assert int.from_bytes(payload[:4], "big") == expected
        assert produced[0] > stalled_at
        await stream.aclose()


# ---- backpressure and keepalive together ---------------------------------------------------

busy_app = Spikard(websocket=WebSocketConfig(max_queue=1, ping_interval=0.1, ping_timeout=0.2))


@busy_app.websocket("/busy")
async def busy(socket: WebSocket) -> AsyncIterator[str]:
    await socket.accept()
    await anyio.sleep(float(socket.query_params["busy"]))  # busy with earlier work
    count = 0
    async for _ in socket:
        count += 1
        if count == int(socket.query_params["n"]):
            yield f"got {count}"
            return


async def test_keepalive_survives_a_busy_handler_with_room_in_the_queue() -> None:
    async with busy_app.test_server() as server:
        url = server.ws_url("/busy?busy=0.6&n=1")
        async with ws_connect(url, ping_interval=None) as ws:
            await ws.send("one")  # fits in the queue: the reader keeps reading pongs
            with anyio.fail_after(5):
                assert await ws.recv() == "got 1"


async def test_keepalive_survives_a_busy_handler_with_a_full_queue() -> None:
    # DESIGN.md: "Pings are answered and keepalive pings sent even while the handler is busy
    # producing or consuming". Here the handler is busy for 0.6 s while the client has sent
    # more than max_queue messages: the connection must not be declared dead.
    async with busy_app.test_server() as server:
        url = server.ws_url("/busy?busy=0.6&n=5")
        async with ws_connect(url, ping_interval=None) as ws:
            for i in range(5):
                await ws.send(str(i))
            with anyio.fail_after(5):
                assert await ws.recv() == "got 5"
