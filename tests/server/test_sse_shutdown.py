"""Shutdown with Server-Sent Events streams open: each ends with its last chunk, the
generators' ``finally`` blocks run, a client that stopped reading is cut at the deadline
and delays nobody, and ``python -m spikard`` exits 0 after SIGTERM.

``python -m spikard tests.server.test_sse_shutdown:app`` serves this module's app in the
subprocess tests; its generators log "generator closed: NAME" from their ``finally``.
"""

from __future__ import annotations

import logging
import re
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager

import anyio
import anyio.abc
import pytest

from spikard import HTTPConfig, Request, ServerSentEvent, Spikard
from spikard.testing import TestServerInfo

from ..app.test_sse import SSEClient
from ..streams import Log
from . import serve_subprocess

SHUTDOWN_TIMEOUT = 2.0
STALLED_AFTER = 0.3
"""Seconds without progress after which the flood counts as stalled."""

app = Spikard(http=HTTPConfig(shutdown_timeout=SHUTDOWN_TIMEOUT))
events = Log()
logger = logging.getLogger("tests.sse_shutdown")


def _closed(name: str) -> None:
    events.append(f"{name} finally")
    logger.warning("generator closed: %s", name)


@app.sse("/ticks", ping=0.1)
async def ticks(request: Request) -> AsyncIterator[ServerSentEvent]:
    try:
        for n in range(1_000_000):
            yield ServerSentEvent(f"tick {n}", id=str(n))
            await anyio.sleep(0.02)
    finally:
        _closed("ticks")


@app.sse("/quiet", ping=0.05)
async def quiet(request: Request) -> AsyncIterator[str]:
    try:
        yield "hello"
        await anyio.sleep_forever()  # keepalive comments only
    finally:
        with anyio.move_on_after(1, shield=True):  # cleanup that awaits, bounded
            await anyio.sleep(0.01)
            _closed("quiet")


flood_sent = [0]
"""Chunks the flood handed to the connection (its yield came back: they were written)."""


@app.sse("/flood", ping=None)
async def flood(request: Request) -> AsyncIterator[str]:
    """64 KiB events as fast as the client takes them; logs each one taken."""
    try:
        for n in range(1_000_000):
            yield "x" * 65536  # resumes once the chunk was written and the socket drained
            flood_sent[0] = n + 1
            logger.warning("flood sent %d", n + 1)
    finally:
        _closed("flood")


async def wait_until_stalled(sent: Callable[[], int]) -> None:
    """Wait until ``sent()`` is positive and has not changed for STALLED_AFTER seconds.

    Bounded at 10 s: the client's small receive buffer and the server's send buffer fill
    within milliseconds on loopback.
    """
    with anyio.fail_after(10):
        last, since = -1, time.monotonic()
        while True:
            await anyio.sleep(0.05)
            now, count = time.monotonic(), sent()
            if count != last:
                last, since = count, now
            elif count > 0 and now - since >= STALLED_AFTER:
                return


@pytest.fixture(autouse=True)
def _clear() -> None:
    events.clear()
    flood_sent[0] = 0


async def run_server(
    leave: anyio.Event, *, task_status: anyio.abc.TaskStatus[TestServerInfo]
) -> None:
    async with app.test_server() as server:
        task_status.started(server)
        await leave.wait()
    events.append("server left")


@contextmanager
def stalled_client(port: int) -> Iterator[socket.socket]:
    """A client that asks for ``/flood`` and never reads (a small receive buffer)."""
    client = socket.socket()
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(5)  # bounds the reads at the end (and this connect)
        client.connect(("127.0.0.1", port))
        client.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
        yield client
    finally:
        client.close()


def drain_socket(client: socket.socket) -> tuple[bytes, bool]:
    """Read to the end: (what came, whether it ended by EOF rather than a reset)."""
    data = bytearray()
    while True:
        try:
            chunk = client.recv(1 << 20)
        except ConnectionResetError:
            return bytes(data), False
        if not chunk:
            return bytes(data), True
        data += chunk


async def assert_closed_cleanly(client: SSEClient) -> None:
    """The body ended with its last chunk; then the server closed with FIN, not a reset."""
    assert await client.read_to_end() is not None
    assert client.clean, "the stream was cut instead of ending with its last chunk"
    with pytest.raises(anyio.EndOfStream):
        await client.stream.receive()


async def test_leaving_the_server_ends_every_stream_with_its_last_chunk() -> None:
    leave = anyio.Event()
    async with anyio.create_task_group() as tg:
        server = await tg.start(run_server, leave)
        clients = [await SSEClient.open(server.port, p) for p in ("/ticks", "/ticks", "/quiet")]
        try:
            with anyio.fail_after(5):
                for client in clients:
                    await client.next_event()
            started = time.monotonic()
            leave.set()
            with anyio.fail_after(SHUTDOWN_TIMEOUT):  # each stream ends before the deadline
                for client in clients:
                    await assert_closed_cleanly(client)
            await events.wait_for_item("server left", timeout=SHUTDOWN_TIMEOUT)
        finally:
            for client in clients:
                await client.aclose()
    assert time.monotonic() - started < SHUTDOWN_TIMEOUT  # nobody waited for the deadline
    assert sorted(events[:-1]) == ["quiet finally", "ticks finally", "ticks finally"]
    assert events[-1] == "server left"  # the generators were closed before the server left
    ticks_seen = [event.data for event in clients[0].received]
    assert ticks_seen == [f"tick {n}" for n in range(len(ticks_seen))]  # none lost at the end


async def test_a_stalled_reader_is_cut_at_the_deadline_and_delays_nobody() -> None:
    leave = anyio.Event()
    async with anyio.create_task_group() as tg:
        server = await tg.start(run_server, leave)
        with stalled_client(server.port) as stalled:
            async with await SSEClient.open(server.port, "/ticks") as healthy:
                with anyio.fail_after(5):
                    await healthy.next_event()
                await wait_until_stalled(lambda: flood_sent[0])  # the buffers are full
                started = time.monotonic()
                leave.set()
                with anyio.fail_after(SHUTDOWN_TIMEOUT):
                    await assert_closed_cleanly(healthy)
                healthy_ended = time.monotonic() - started
            # shutdown_timeout bounds the drain; the stalled connection is then cut
            await events.wait_for_item("server left", timeout=SHUTDOWN_TIMEOUT + 2)
            stopped = time.monotonic() - started
            data, eof = await anyio.to_thread.run_sync(drain_socket, stalled)
    assert healthy_ended < SHUTDOWN_TIMEOUT / 2  # not held up by the stalled peer
    assert stopped < SHUTDOWN_TIMEOUT + 1
    assert "flood finally" in events
    assert "ticks finally" in events
    assert data.startswith(b"HTTP/1.1 200")
    # cut: no last chunk reached the stalled client (a reset, or EOF mid-body)
    assert not (eof and data.endswith(b"\r\n0\r\n\r\n"))


_CLOSED = re.compile(rb"generator closed: (\w+)")
_SENT = re.compile(rb"flood sent \d+")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("server_backend", ["asyncio", "trio"])
async def test_sigterm_ends_streams_cleanly_and_exits_zero(server_backend: str) -> None:
    async with serve_subprocess(
        ["--backend", server_backend], app="tests.server.test_sse_shutdown:app", drain=True
    ) as served:
        with stalled_client(served.port):
            clients = [await SSEClient.open(served.port, p) for p in ("/ticks", "/quiet")]
            try:
                with anyio.fail_after(10):
                    for client in clients:
                        await client.next_event()
                await wait_until_stalled(lambda: len(_SENT.findall(served.output)))
                started = time.monotonic()
                served.process.send_signal(signal.SIGTERM)
                with anyio.fail_after(SHUTDOWN_TIMEOUT):
                    for client in clients:
                        await assert_closed_cleanly(client)
                with anyio.fail_after(SHUTDOWN_TIMEOUT + 3):  # the deadline cuts the stalled one
                    code = await served.process.wait()
                stopped = time.monotonic() - started
            finally:
                for client in clients:
                    await client.aclose()
    assert code == 0, served.output.decode()
    assert stopped < SHUTDOWN_TIMEOUT + 2
    assert sorted(_CLOSED.findall(served.output)) == [b"flood", b"quiet", b"ticks"]


slow_cleanup_app = Spikard(http=HTTPConfig(shutdown_timeout=0.5, write_timeout=2.5))


@slow_cleanup_app.sse("/flood", ping=None)
async def flood_then_slow_cleanup(request: Request) -> AsyncIterator[str]:
    try:
        for n in range(1_000_000):
            yield "x" * 65536
            flood_sent[0] = n + 1
    finally:
        # Closed at its yield (the socket is full), so this runs in the connection's
        # shielded close of the body, which only write_timeout bounds.
        await anyio.sleep(10)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the bound is backend-independent
async def test_a_slow_generator_cleanup_does_not_hold_shutdown_past_its_deadline() -> None:
    with ExitStack() as sockets, anyio.fail_after(10):
        async with slow_cleanup_app.test_server() as server:
            sockets.enter_context(stalled_client(server.port))
            await wait_until_stalled(lambda: flood_sent[0])
            started = time.monotonic()
        stopped = time.monotonic() - started
    assert stopped < 0.5 + 1  # shutdown_timeout, plus slack; today: write_timeout (2.5 s)
