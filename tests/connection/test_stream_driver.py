"""The portable driver writes the same bytes, in order, with and without its direct sends.

On trio a plain TCP stream's socket may be written to directly while nothing is queued (see
``spikard.connection.stream_driver``): a second way to write, so it is checked against the
writer task alone, over real loopback sockets, with random writes, cancelled drains and a
peer that reads slowly in random sizes.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
from anyio.abc import SocketAttribute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikard.connection.stream_driver import StreamTransport, open_stream_transport

WRITES = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=300_000),  # size: up to many socket buffers
        st.sampled_from(["none", "drain", "cancelled-drain"]),
    ),
    min_size=1,
    max_size=12,
)


def _raw_socket(stream: anyio.abc.ByteStream) -> socket.socket:
    raw = stream.extra(SocketAttribute.raw_socket)
    assert isinstance(raw, socket.socket)
    return raw


async def _write_all(
    transport: StreamTransport, writes: list[tuple[int, str]], pattern: bytes
) -> bytes:
    expected = bytearray()
    for index, (size, then) in enumerate(writes):
        mark = pattern[index % len(pattern)]
        data = bytes([index % 251]) * (size - 1) + bytes([mark])
        transport.write(data)
        expected += data
        if then == "drain":
            await transport.drain()
        elif then == "cancelled-drain":
            with anyio.move_on_after(0):
                await transport.drain()
    await transport.aclose(30)
    return bytes(expected)


async def _transfer(writes: list[tuple[int, str]], direct: bool, seed: int) -> tuple[bytes, bytes]:
    """Write ``writes`` through a driver; return (what was written, what the peer read)."""
    rng = random.Random(seed)
    received = bytearray()
    async with _connected(65536) as (stream, client), anyio.create_task_group() as task_group:

        async def read_slowly() -> None:
            while True:
                try:
                    data = await client.receive(rng.choice([100, 4096, 65536, 262144]))
                except anyio.EndOfStream:
                    return
                received.extend(data)
                if rng.random() < 0.3:
                    await anyio.sleep(0.001)

        task_group.start_soon(read_slowly)
        raw = _raw_socket(stream) if direct else None
        async with open_stream_transport(stream, direct_socket=raw) as transport:
            written = await _write_all(transport, writes, b"spikard")
    return written, bytes(received)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writes=WRITES, seed=st.integers(min_value=0, max_value=2**32))
def test_direct_sends_deliver_the_same_bytes_as_the_writer_task(
    writes: list[tuple[int, str]], seed: int
) -> None:
    for direct in (True, False):
        written, received = anyio.run(_transfer, writes, direct, seed, backend="trio")
        assert len(received) == len(written), direct
        assert received == written, direct


@asynccontextmanager
async def _connected(
    buffer_size: int | None = None,
) -> AsyncIterator[tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]]:
    """An accepted loopback connection: (the server's stream, the client's).

    ``buffer_size``: the kernel's send buffer on the server side and receive buffer on the
    client's, small so that writes are taken in part (as over a real network).
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    async with listener, await anyio.connect_tcp("127.0.0.1", port) as client:
        accepting = listener.listeners[0]
        assert isinstance(accepting, anyio.abc.SocketListener)
        async with await accepting.accept() as stream:
            if buffer_size is not None:
                _raw_socket(stream).setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_size)
                _raw_socket(client).setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
            yield stream, client


@pytest.mark.parametrize("anyio_backend", ["trio"])
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "writer-task"])
async def test_who_sends_a_small_write(direct: bool) -> None:
    """With the direct socket a write leaves nothing queued; without, the writer sends it."""
    async with _connected() as (stream, client):
        raw = _raw_socket(stream) if direct else None
        async with open_stream_transport(stream, direct_socket=raw) as transport:
            transport.write(b"hello")
            assert transport.write_buffer_size == (0 if direct else 5)
            assert await client.receive(5) == b"hello"
            await anyio.wait_all_tasks_blocked()  # the writer task has seen its send return
            assert transport.bytes_sent == 5


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_what_the_kernel_does_not_take_is_queued_behind_it() -> None:
    """A write larger than the socket buffer goes out in part at once, the rest in order."""
    data = bytes(range(256)) * 4096  # 1 MiB
    async with (
        _connected(65536) as (stream, client),
        open_stream_transport(stream, direct_socket=_raw_socket(stream)) as transport,
    ):
        transport.write(data)
        taken = transport.bytes_sent
        assert 0 < taken < len(data)
        assert transport.write_buffer_size == len(data) - taken
        transport.write(b"after")  # queued behind the rest, not sent directly
        assert transport.bytes_sent == taken
        received = bytearray()
        with anyio.fail_after(10):
            while len(received) < len(data) + 5:
                received += await client.receive(65536)
        assert received == data + b"after"
