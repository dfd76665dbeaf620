"""Bounded memory under floods and slow peers; no leaks after a thousand faulty connections.

The server runs in its own process (``tests/robustness/app.py``) so that its RSS, file
descriptors and task count can be read from ``/stats`` without the clients' own allocations.
Bounds asserted here are the ones promised in the README's robustness section.
"""

from __future__ import annotations

import json
import socket
import statistics
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from ..helpers import masked_frame, read_until, upgrade_request, ws_connect
from ..server import Served, serve_subprocess

# The clients run on asyncio; the server subprocess runs on each backend (server_backend).
pytestmark = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@pytest.fixture(params=["asyncio", "trio"])
def server_backend(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The server's command-line options: the asyncio driver, or the portable one on trio."""
    return ("--backend", str(request.param))


MiB = 1024 * 1024
MEMORY_BOUND = 16 * MiB
APP = "tests.robustness.app:app"
FRAME = masked_frame(0x2, b"\xcd" * 65536)


async def stats(server: Served) -> dict[str, Any]:
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        response = await read_until(stream, b"}")
    return json.loads(response.partition(b"\r\n\r\n")[2])  # type: ignore[no-any-return]


@asynccontextmanager
async def upgraded(server: Served, path: str) -> AsyncIterator[anyio.abc.SocketStream]:
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(upgrade_request(path, port=server.port))
        head = await read_until(stream, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        yield stream


async def echo_latencies(server: Served, count: int = 20) -> list[float]:
    latencies = []
    async with ws_connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        for index in range(count):
            started = time.perf_counter()
            await ws.send(f"probe {index}")
            assert await ws.recv() == f"probe {index}"
            latencies.append(time.perf_counter() - started)
    return latencies


def assert_responsive(latencies: list[float]) -> None:
    """The server answered the probes at once: a held or starved server takes seconds for
    most of them; one slow probe of twenty is the machine (a VM hiccup), not the server."""
    assert statistics.median(latencies) < 0.25, latencies
    assert max(latencies) < 2.0, latencies


TINY_FRAMES = masked_frame(0x2, b"") * 10923  # 64 KiB of empty messages
PINGS = masked_frame(0x9, b"\x70" * 125) * 512  # 66 KiB; every ping needs a pong written back


async def flood_until_blocked(server: Served, path: str, burst: bytes) -> tuple[int, int, float]:
    """Send ``burst`` after ``burst`` without reading until TCP pushes back (or 200 MiB).

    Returns the bytes sent, the server's RSS growth meanwhile, and the slowest echo of a
    probe connection while the flood is held.
    """
    await echo_latencies(server)  # warm up
    before = await stats(server)
    sent = 0
    async with upgraded(server, path) as stream:
        with anyio.fail_after(30):
            while sent < 200 * MiB:
                with anyio.move_on_after(1.0) as blocked:
                    await stream.send(burst)
                if blocked.cancelled_caught:
                    break  # TCP pushed back: the server stopped reading
                sent += len(burst)
        during = await stats(server)
        latencies = await echo_latencies(server)
    growth = (during["rss_kib"] - before["rss_kib"]) * 1024
    assert_responsive(latencies)
    return sent, growth, max(latencies)


@pytest.mark.parametrize(
    ("path", "burst"),
    [("/sink", FRAME), ("/sink", TINY_FRAMES), ("/echo", PINGS)],
    ids=["64-KiB-frames", "tiny-frames", "pings-whose-pongs-nobody-reads"],
)
async def test_a_flood_from_a_client_that_never_reads_is_held_back_by_tcp(
    path: str, burst: bytes, server_backend: tuple[str, ...]
) -> None:
    async with serve_subprocess(server_backend, app=APP, drain=True) as server:
        sent, growth, slowest = await flood_until_blocked(server, path, burst)
    print(
        f"flood: sent {sent / MiB:.1f} MiB before TCP blocked; "
        f"server RSS +{growth / MiB:.2f} MiB; probe max {slowest * 1000:.1f} ms"
    )
    assert sent < 200 * MiB, "the server kept reading input it could not act on"
    assert growth < MEMORY_BOUND


@pytest.mark.parametrize("says_hello", [False, True], ids=["silent", "one-unread-message"])
async def test_a_client_that_never_reads_paces_the_producer(
    says_hello: bool, server_backend: tuple[str, ...]
) -> None:
    """Also when a message the producer never reads waits in its queue (replies to queued
    input may be held for one write, but never past a full transport)."""
    async with serve_subprocess(server_backend, app=APP, drain=True) as server:
        await echo_latencies(server)
        before = await stats(server)
        async with upgraded(server, "/source?pause" if says_hello else "/source") as stream:
            if says_hello:
                await stream.send(masked_frame(0x1, b"hello"))
            await anyio.sleep(2.0)  # read nothing while the handler produces
            during = await stats(server)
            latencies = await echo_latencies(server)
            await anyio.sleep(0.5)
            later = await stats(server)
        growth = (during["rss_kib"] - before["rss_kib"]) * 1024
        produced = during["produced"] * 65536
        print(
            f"source: produced {produced / MiB:.1f} MiB for a silent client; "
            f"server RSS +{growth / MiB:.2f} MiB; probe max {max(latencies) * 1000:.1f} ms"
        )
        assert later["produced"] - during["produced"] <= 1, "the producer was not paced"
        assert produced < 64 * MiB  # what loopback socket buffers can hold, not 200 MiB
        assert growth < MEMORY_BOUND
        assert_responsive(latencies)


async def test_a_callback_client_that_never_reads_is_held_back_by_tcp(
    server_backend: tuple[str, ...],
) -> None:
    """Replies of the callback interface are paced by the peer, even when every read ends
    with a pong (no message follows it, so nothing else would wait for the drain)."""
    burst = masked_frame(0x1, b"x" * 1000) * 20 + masked_frame(0xA, b"p")
    async with serve_subprocess(server_backend, app=APP, drain=True) as server:
        await echo_latencies(server)
        before = await stats(server)
        sent = 0
        async with upgraded(server, "/callback-echo") as stream:
            with anyio.fail_after(30):
                for _ in range(3000):  # paced, so that each server read ends with the pong
                    with anyio.move_on_after(1.0) as blocked:
                        await stream.send(burst)
                    if blocked.cancelled_caught:
                        break  # TCP pushed back: the server stopped reading
                    sent += len(burst)
                    await anyio.sleep(0.001)
            during = await stats(server)
        growth = (during["rss_kib"] - before["rss_kib"]) * 1024
        print(f"callback flood: sent {sent / MiB:.1f} MiB; server RSS +{growth / MiB:.2f} MiB")
        assert growth < MEMORY_BOUND


async def faulty_client(server: Served, kind: int) -> None:
    """One of several ways a peer can misbehave, chosen by ``kind``."""
    port = server.port
    match kind % 6:
        case 0:  # clean echo and close
            async with ws_connect(f"ws://127.0.0.1:{port}/echo") as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
        case 1:  # vanishes without a close frame
            async with upgraded(server, "/echo") as stream:
                await stream.send(masked_frame(0x1, b"bye"))
        case 2:  # TCP reset in the middle of a message
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(upgrade_request("/echo", port=port))
            sock.recv(4096)
            sock.sendall(FRAME[: len(FRAME) // 2])
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        case 3:  # half-open: stops sending, keeps the socket
            async with upgraded(server, "/echo") as stream:
                await stream.send_eof()
                await anyio.sleep(0.01)
        case 4:  # the handler raises
            async with upgraded(server, "/raise") as stream:
                await stream.send(masked_frame(0x1, b"boom"))
                await read_until(stream, b"\x88")
        case _:  # the handler blocks the loop for a moment
            async with ws_connect(f"ws://127.0.0.1:{port}/block") as ws:
                await ws.send("slow")
                assert await ws.recv() == "slow"


async def faulty_round(server: Served, count: int = 1000, concurrency: int = 50) -> None:
    for batch in range(count // concurrency):
        async with anyio.create_task_group() as task_group:
            for index in range(concurrency):
                task_group.start_soon(faulty_client, server, batch * concurrency + index)


async def test_a_thousand_faulty_connections_leak_nothing(server_backend: tuple[str, ...]) -> None:
    async with serve_subprocess(server_backend, app=APP, drain=True) as server:
        with anyio.fail_after(120):
            # The first round sets the allocator's high-water mark (50 peers at a time with
            # 64 KiB frames); a leak shows as growth over the second.
            await faulty_round(server)
            await anyio.sleep(0.5)
            before = await stats(server)
            await faulty_round(server)
            deadline = anyio.current_time() + 10
            while anyio.current_time() < deadline:
                after = await stats(server)
                if after["tasks"] <= before["tasks"] and after["fds"] <= before["fds"]:
                    break
                await anyio.sleep(0.1)
        growth = (after["rss_kib"] - before["rss_kib"]) * 1024
        print(
            f"soak: 1000 faulty connections; fds {before['fds']} -> {after['fds']}, "
            f"tasks {before['tasks']} -> {after['tasks']}, RSS +{growth / MiB:.2f} MiB"
        )
        assert after["fds"] <= before["fds"]
        assert after["tasks"] <= before["tasks"]
        assert growth < 2 * MiB
        assert_responsive(await echo_latencies(server))
