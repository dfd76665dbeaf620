"""A WebSocket load generator that costs less than the servers it measures.

It runs in its own process on asyncio + uvloop, with one ``asyncio.Protocol`` per
connection and no WebSocket library: the opening handshake is written by hand, client frames
are built and masked once before the run (a fixed 4-byte key, so a send is one
``transport.write`` of prepared bytes), and each echoed frame is checked with one
``bytes.startswith`` against the exact frame the server must send back (header and payload),
so every echoed byte is verified for the price of a ``memcmp``. Each connection cycles through
a few distinct payloads, so a stale or reordered echo fails verification too. Anything that is
not the expected frame (a ping, a fragmented message, a close) takes a slower general path.

Workloads (``--workload``, comma-separated for several; see ``docs/benchmarks.md``):

- ``a``: 1 connection, ping-pong of 32 B text messages: msgs/s, p50/p99 round-trip latency.
- ``b``: 64 connections x 16 messages in flight, 32 B text: msgs/s.
- ``c``: 1 connection, ping-pong of 64 KiB binary messages: MB/s.
- ``d``: connect + handshake + one 32 B echo + close handshake, several lanes: conns/s.
- ``e``: RSS per idle connection at 2,000 and 10,000 open connections (each did one echo).
- ``f``: p50/p99 of one probe connection (ping-pong, 32 B) while 1,000 others ping-pong.
- ``scale``: ``--connections`` N connections ping-pong ``--size`` B messages (for plots).

Each workload reports its throughput and, given ``--server-pid``, the server's CPU time
(utime + stime from ``/proc/PID/stat``) per unit of work over the timed window, and always
the load generator's own CPU (``getrusage``) over the same window. Results are JSON on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hashlib
import json
import os
import random
import resource
import socket
import struct
import sys
import time
import typing
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "WORKLOADS",
    "LoadError",
    "MessageSet",
    "Params",
    "main",
    "run_workloads",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_MASK_KEY = b"\x5a\x13\xc7\x2e"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_LINGER_ABORT = struct.pack("ii", 1, 0)
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0, 1, 2, 8, 9, 10

# Opening handshakes are prepared once: a pool of keys, each with its request and expected
# Sec-WebSocket-Accept (servers never check that keys differ between connections).
_HANDSHAKE_POOL = 64


class LoadError(Exception):
    """The server misbehaved (wrong echo, failed handshake, dropped connection) or timed out."""


# ---- frames ------------------------------------------------------------------------------------


def _mask(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def _header(opcode: int, length: int, masked: bool) -> bytes:
    first = 0x80 | opcode
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head = bytes((first, mask_bit | length))
    elif length < 65536:
        head = bytes((first, mask_bit | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((first, mask_bit | 127)) + length.to_bytes(8, "big")
    return head + _MASK_KEY if masked else head


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (FIN set) with the fixed mask key."""
    return _header(opcode, len(payload), True) + _mask(payload, _MASK_KEY)


def server_frame(opcode: int, payload: bytes) -> bytes:
    """The unmasked frame (FIN set, shortest length encoding) a server must send back."""
    return _header(opcode, len(payload), False) + payload


CLOSE_1000 = client_frame(_OP_CLOSE, (1000).to_bytes(2, "big"))


@dataclass(frozen=True)
class MessageSet:
    """Distinct payloads of one kind and size, with their masked and expected frames."""

    kind: str
    size: int
    payloads: tuple[bytes, ...]
    send: tuple[bytes, ...]
    expect: tuple[bytes, ...]

    @property
    def opcode(self) -> int:
        return _OP_TEXT if self.kind == "text" else _OP_BINARY

    @classmethod
    def build(cls, kind: str, size: int, variants: int | None = None) -> MessageSet:
        if kind not in ("text", "binary"):
            raise ValueError(f"kind must be 'text' or 'binary', not {kind!r}")
        if variants is None:
            variants = 16 if size <= 65536 else 4
        rng = random.Random(size * 31 + len(kind))
        payloads = []
        for index in range(variants):
            if kind == "text":
                alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                body = "".join(rng.choice(alphabet) for _ in range(min(size, 4096)))
                text = (f"{index:x}:" + body * (size // max(len(body), 1) + 1))[:size]
                payloads.append(text.encode("ascii"))
            else:
                payloads.append(bytes((index,)) + rng.randbytes(max(size - 1, 0)))
        opcode = _OP_TEXT if kind == "text" else _OP_BINARY
        return cls(
            kind,
            size,
            tuple(payloads),
            tuple(client_frame(opcode, p) for p in payloads),
            tuple(server_frame(opcode, p) for p in payloads),
        )


@dataclass(frozen=True)
class _Handshake:
    request: bytes
    accept: bytes


def _handshakes(host: str, port: int, path: str) -> list[_Handshake]:
    pool = []
    for _ in range(_HANDSHAKE_POOL):
        key = base64.b64encode(os.urandom(16))
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode("ascii")
        pool.append(_Handshake(request, accept))
    return pool


# ---- one connection ------------------------------------------------------------------------------


class Stats:
    """Counters shared by every connection of a workload (one attribute update per read)."""

    __slots__ = ("error", "failed", "latencies", "received", "recording")

    def __init__(self) -> None:
        self.received = 0
        self.recording = False
        self.latencies: list[int] = []
        self.failed: asyncio.Event | None = None
        self.error: str | None = None

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        if self.failed is not None:
            self.failed.set()


_HANDSHAKING, _OPEN, _CLOSING = 0, 1, 2


class EchoConnection(asyncio.Protocol):
    """One client connection: handshake, keep ``window`` messages in flight, verify echoes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        stats: Stats,
        messages: MessageSet,
        handshake: _Handshake,
        *,
        record: bool = True,
    ) -> None:
        self.loop = loop
        self.stats = stats
        self.messages = messages
        self._send = messages.send
        self._expect = messages.expect
        self._variants = len(messages.send)
        self._handshake = handshake
        self.record = record
        self.transport: asyncio.Transport | None = None
        self.state = _HANDSHAKING
        self.buf = bytearray()
        self.send_index = 0
        self.recv_index = 0
        self.received = 0
        self.in_flight = 0
        self.sending = False
        self.budget = -1  # messages left to send; negative means unlimited
        self.sent_at: collections.deque[int] = collections.deque()
        self._fragments: bytearray | None = None
        self._fragment_opcode = 0
        self.opened: asyncio.Future[None] = loop.create_future()
        self.close_code: asyncio.Future[int] = loop.create_future()
        self.eof: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.drained: asyncio.Future[None] | None = None

    # -- asyncio callbacks --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self._handshake.request)

    def data_received(self, data: bytes) -> None:
        if self.state is _HANDSHAKING:
            self._handshake_data(data)
        else:
            self._frames(data)

    def eof_received(self) -> bool:
        if not self.eof.done():
            self.eof.set_result(None)
        if self.state is not _CLOSING:
            self._fail("the server closed the connection before the close handshake")
        return True  # keep the transport: we close it ourselves, without TIME_WAIT

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.eof.done():
            self.eof.set_result(None)
        if self.state is not _CLOSING:
            self._fail(f"connection lost before the close handshake ({exc!r})")
        for future in (self.opened, self.close_code):
            if not future.done():
                future.set_exception(LoadError("connection lost"))
                future.exception()  # mark retrieved
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # -- handshake --

    def _handshake_data(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > 65536:
                self._fail("handshake response head larger than 64 KiB")
            return
        head = bytes(self.buf[:end]).decode("latin-1")
        rest = bytes(self.buf[end + 4 :])
        self.buf = bytearray()
        lines = head.split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            self._fail(f"handshake refused: {lines[0]!r}")
            return
        accept = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-accept":
                accept = value.strip().encode("latin-1")
        if accept != self._handshake.accept:
            self._fail(f"bad Sec-WebSocket-Accept {accept!r}")
            return
        self.state = _OPEN
        if not self.opened.done():
            self.opened.set_result(None)
        if rest:
            self._frames(rest)

    # -- frames (hot path) --

    def _frames(self, data: bytes) -> None:
        buf = self.buf
        view: bytes | bytearray = data
        if buf:
            buf += data
            view = buf
        end = len(view)
        pos = 0
        got = 0
        expect = self._expect
        index = self.recv_index
        variants = self._variants
        while end - pos >= 2:
            second = view[pos + 1]
            length = second & 0x7F
            if length < 126:
                head = 2
            elif length == 126:
                if end - pos < 4:
                    break
                length = (view[pos + 2] << 8) | view[pos + 3]
                head = 4
            else:
                if end - pos < 10:
                    break
                length = int.from_bytes(view[pos + 2 : pos + 10], "big")
                head = 10
            frame_end = pos + head + length
            if frame_end > end:
                break
            expected = expect[index]
            if frame_end - pos == len(expected) and view.startswith(expected, pos):
                got += 1
                index += 1
                if index == variants:
                    index = 0
            else:
                self.recv_index = index
                if self._other_frame(view, pos, head, frame_end):
                    got += 1
                index = self.recv_index
                if self.stats.error is not None:
                    return
            pos = frame_end
        self.recv_index = index
        if pos == end:
            if buf:
                self.buf = bytearray()
        elif view is buf:
            del buf[:pos]
        else:
            self.buf = bytearray(view[pos:])
        if got:
            self._echoed(got)

    def _other_frame(self, view: bytes | bytearray, pos: int, head: int, end: int) -> bool:
        """Handle a frame that is not the expected echo; True when it completed one."""
        first = view[pos]
        opcode = first & 0x0F
        if view[pos + 1] & 0x80:
            self._fail("the server sent a masked frame")
            return False
        payload = bytes(view[pos + head : end])
        if opcode == _OP_PING:
            self._write(client_frame(_OP_PONG, payload))
            return False
        if opcode == _OP_PONG:
            return False
        if opcode == _OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.close_code.done():
                self.close_code.set_result(code)
            if self.state is not _CLOSING:
                self._fail(f"the server closed with {code} {payload[2:]!r} during the run")
            return False
        if opcode in (_OP_TEXT, _OP_BINARY) and self._fragments is None:
            if first & 0x80:
                return self._verify(opcode, payload)
            self._fragment_opcode = opcode
            self._fragments = bytearray(payload)
            return False
        if opcode == _OP_CONT and self._fragments is not None:
            self._fragments += payload
            if first & 0x80:
                message = bytes(self._fragments)
                self._fragments = None
                return self._verify(self._fragment_opcode, message)
            return False
        self._fail(f"unexpected frame: opcode {opcode}, FIN {bool(first & 0x80)}")
        return False

    def _verify(self, opcode: int, payload: bytes) -> bool:
        index = self.recv_index
        wanted = self.messages.payloads[index]
        if opcode != self.messages.opcode or payload != wanted:
            self._fail(
                f"echo mismatch: opcode {opcode} length {len(payload)} "
                f"(want opcode {self.messages.opcode} length {len(wanted)}): {payload[:40]!r}"
            )
            return False
        self.recv_index = (index + 1) % self._variants
        return True

    def _echoed(self, got: int) -> None:
        if got > self.in_flight:
            self._fail(f"{got} echoes for {self.in_flight} messages in flight")
            return
        self.received += got
        stats = self.stats
        stats.received += got
        now = time.perf_counter_ns()
        sent_at = self.sent_at
        if stats.recording and self.record:
            latencies = stats.latencies
            for _ in range(got):
                latencies.append(now - sent_at.popleft())
        else:
            for _ in range(got):
                sent_at.popleft()
        self.in_flight -= got
        if self.sending:
            self._send_more(got, now)
        elif self.in_flight == 0 and self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def _send_more(self, count: int, now: int) -> None:
        if self.budget >= 0:
            count = min(count, self.budget)
            self.budget -= count
            if self.budget == 0:
                self.sending = False
            if count == 0:
                return
        frames = self._send
        index = self.send_index
        variants = self._variants
        if count == 1:
            data = frames[index]
            index += 1
            if index == variants:
                index = 0
        else:
            chunk = []
            for _ in range(count):
                chunk.append(frames[index])
                index += 1
                if index == variants:
                    index = 0
            data = b"".join(chunk)
        self.send_index = index
        self.in_flight += count
        self.sent_at.extend([now] * count)
        self._write(data)

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _fail(self, message: str) -> None:
        self.stats.fail(message)
        if self.transport is not None:
            self.transport.abort()

    # -- control, from coroutines --

    def start(self, window: int, budget: int = -1) -> None:
        """Put ``window`` messages in flight; send one more per echo, ``budget`` in all."""
        self.sending = True
        self.budget = budget
        self._send_more(window, time.perf_counter_ns())

    async def stop(self) -> None:
        """Stop sending and wait until every message in flight came back."""
        self.sending = False
        if self.in_flight and not self.lost.done():
            self.drained = self.loop.create_future()
            await self.drained

    async def close(self, timeout: float = 5.0) -> None:
        """Close handshake (code 1000), wait for the server's TCP close, then drop the socket.

        The socket is closed with SO_LINGER 0 only after the close handshake and the server's
        FIN, so nothing sits in TIME_WAIT and ephemeral ports are not exhausted.
        """
        if self.lost.done():
            return
        self.state = _CLOSING
        self._write(CLOSE_1000)
        try:
            code = await asyncio.wait_for(asyncio.shield(self.close_code), timeout)
            if code != 1000:
                self.stats.fail(f"the server answered our close with {code}")
            await asyncio.wait_for(asyncio.shield(self.eof), timeout)
        except asyncio.TimeoutError:
            self.stats.fail(f"no close frame and TCP close from the server within {timeout:g} s")
        finally:
            self.abort()

    def abort(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
            except OSError:
                pass
        transport.abort()


# ---- measurement -------------------------------------------------------------------------------


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat", "rb") as file:
        fields = file.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def process_rss_kib(pid: int) -> int:
    """Resident set size of process ``pid`` in KiB (VmRSS in /proc/PID/status)."""
    with open(f"/proc/{pid}/status", "rb") as file:
        for line in file:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise LoadError(f"no VmRSS for pid {pid}")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class _Snapshot:
    wall: float
    server_cpu: float | None
    client_cpu: float
    units: int

    @classmethod
    def take(cls, pid: int | None, units: int) -> _Snapshot:
        return cls(
            time.perf_counter(),
            process_cpu_seconds(pid) if pid else None,
            own_cpu_seconds(),
            units,
        )


def _percentile(sorted_values: Sequence[int], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index] / 1000.0


def _window_result(
    start: _Snapshot, end: _Snapshot, unit: str, latencies: list[int] | None = None
) -> dict[str, Any]:
    wall = end.wall - start.wall
    units = end.units - start.units
    client_cpu = end.client_cpu - start.client_cpu
    result: dict[str, Any] = {
        "unit": unit,
        "units": units,
        "seconds": round(wall, 4),
        "throughput": units / wall if wall > 0 else 0.0,
        "client_cpu_us_per_unit": client_cpu * 1e6 / units if units else None,
        "client_cpu_util": client_cpu / wall if wall > 0 else None,
    }
    if start.server_cpu is not None and end.server_cpu is not None:
        server_cpu = end.server_cpu - start.server_cpu
        result["server_cpu_us_per_unit"] = server_cpu * 1e6 / units if units else None
        result["server_cpu_util"] = server_cpu / wall if wall > 0 else None
        result["client_to_server_cpu"] = client_cpu / server_cpu if server_cpu > 0 else None
    if latencies is not None:
        ordered = sorted(latencies)
        result["latency_samples"] = len(ordered)
        result["p50_us"] = _percentile(ordered, 0.50)
        result["p99_us"] = _percentile(ordered, 0.99)
    return result


# ---- workload building blocks ----------------------------------------------------------------


@dataclass
class Params:
    """Where the server is and how long and how hard to push it."""

    host: str = "127.0.0.1"
    port: int = 8000
    path: str = "/"
    server_pid: int | None = None
    duration: float = 2.0
    warmup: float = 0.5
    connections: int = 64
    inflight: int = 16
    size: int = 32
    kind: str = "text"
    lanes: int = 8
    rss_counts: tuple[int, ...] = (2000, 10000)
    busy: int = 1000
    connect_concurrency: int = 64
    timeout: float = 60.0
    handshakes: list[_Handshake] = field(default_factory=list)

    def handshake(self, index: int) -> _Handshake:
        if not self.handshakes:
            self.handshakes = _handshakes(self.host, self.port, self.path)
        return self.handshakes[index % len(self.handshakes)]


async def _connect(
    params: Params, stats: Stats, messages: MessageSet, index: int, *, record: bool = True
) -> EchoConnection:
    loop = asyncio.get_running_loop()
    handshake = params.handshake(index)
    _, conn = await loop.create_connection(
        lambda: EchoConnection(loop, stats, messages, handshake, record=record),
        params.host,
        params.port,
    )
    await conn.opened
    return conn


async def _open_many(
    params: Params, stats: Stats, messages: MessageSet, count: int, *, record: bool = True
) -> list[EchoConnection]:
    """Open ``count`` connections, at most ``connect_concurrency`` handshakes at a time."""
    conns: list[EchoConnection] = []
    next_index = 0

    async def opener() -> None:
        nonlocal next_index
        while next_index < count and stats.error is None:
            index = next_index
            next_index += 1
            conns.append(await _connect(params, stats, messages, index, record=record))

    workers = min(params.connect_concurrency, count)
    await asyncio.gather(*(opener() for _ in range(workers)))
    return conns


async def _close_all(
    conns: Sequence[EchoConnection], timeout: float, concurrency: int = 256
) -> None:
    """Stop, drain and close every connection (``concurrency`` close handshakes at a time,
    so a server is not asked to close thousands at once); abort what is left after
    ``timeout``.
    """
    for conn in conns:
        conn.sending = False
    limit = asyncio.Semaphore(concurrency)

    async def finish(conn: EchoConnection) -> None:
        async with limit:
            await conn.stop()
            await conn.close()

    try:
        await asyncio.wait_for(asyncio.gather(*(finish(c) for c in conns)), timeout)
    except (asyncio.TimeoutError, LoadError):
        pass
    finally:
        for conn in conns:
            conn.abort()


async def _guarded(stats: Stats, body: Awaitable[dict[str, Any]], timeout: float) -> dict[str, Any]:
    """Run a workload body; fail fast on the first verification error, bounded in time."""
    stats.failed = asyncio.Event()
    task = asyncio.ensure_future(body)
    failed = asyncio.ensure_future(stats.failed.wait())
    try:
        done, _ = await asyncio.wait({task, failed}, timeout=timeout, return_when="FIRST_COMPLETED")
        if task in done and stats.error is None:
            return task.result()
        if not done:
            raise LoadError(f"workload did not finish within {timeout:g} s")
        raise LoadError(stats.error or "workload failed")
    finally:
        for pending in (task, failed):
            if not pending.done():
                pending.cancel()
        await asyncio.gather(task, failed, return_exceptions=True)


async def _timed_echo(
    params: Params,
    stats: Stats,
    conns: Sequence[EchoConnection],
    window: int,
    unit: str = "msg",
) -> dict[str, Any]:
    """All ``conns`` keep ``window`` messages in flight; measure after a warmup."""
    for conn in conns:
        conn.start(window)
    await asyncio.sleep(params.warmup)
    stats.recording = True
    start = _Snapshot.take(params.server_pid, stats.received)
    await asyncio.sleep(params.duration)
    end = _Snapshot.take(params.server_pid, stats.received)
    stats.recording = False
    result = _window_result(start, end, unit, stats.latencies)
    result["verified"] = stats.received
    return result


# ---- workloads -----------------------------------------------------------------------------


async def _echo_workload(
    params: Params, count: int, window: int, kind: str, size: int
) -> dict[str, Any]:
    stats = Stats()
    messages = MessageSet.build(kind, size)

    async def body() -> dict[str, Any]:
        conns = await _open_many(params, stats, messages, count)
        try:
            result = await _timed_echo(params, stats, conns, window)
        finally:
            await _close_all(conns, 10.0)
        result.update(connections=count, inflight=window, size=size, kind=kind)
        result["mb_per_s"] = result["throughput"] * size / 1e6
        return result

    return await _guarded(stats, body(), params.timeout)


async def workload_a(params: Params) -> dict[str, Any]:
    return await _echo_workload(params, 1, 1, "text", 32)


async def workload_b(params: Params) -> dict[str, Any]:
    return await _echo_workload(params, params.connections, params.inflight, "text", 32)


async def workload_c(params: Params) -> dict[str, Any]:
    return await _echo_workload(params, 1, 1, "binary", 65536)


async def workload_scale(params: Params) -> dict[str, Any]:
    return await _echo_workload(params, params.connections, 1, params.kind, params.size)


async def workload_d(params: Params) -> dict[str, Any]:
    """Lanes each loop: connect, handshake, one 32 B echo, close handshake, drop."""
    stats = Stats()
    messages = MessageSet.build("text", 32)
    completed = 0
    stopping = False
    latencies: list[int] = []

    async def lane(first_index: int) -> None:
        nonlocal completed
        index = first_index
        while not stopping:
            began = time.perf_counter_ns()
            conn = await _connect(params, stats, messages, index, record=False)
            index += params.lanes
            conn.start(1, budget=1)
            await conn.stop()
            if conn.received != 1:
                raise LoadError("no echo on a fresh connection")
            await conn.close()
            completed += 1
            if stats.recording:
                latencies.append(time.perf_counter_ns() - began)

    async def body() -> dict[str, Any]:
        nonlocal stopping
        lanes = [asyncio.ensure_future(lane(i)) for i in range(params.lanes)]
        try:
            await asyncio.sleep(params.warmup)
            stats.recording = True
            start = _Snapshot.take(params.server_pid, completed)
            await asyncio.sleep(params.duration)
            end = _Snapshot.take(params.server_pid, completed)
            stats.recording = False
            stopping = True
            await asyncio.wait_for(asyncio.gather(*lanes), 10.0)
        finally:
            for task in lanes:
                task.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
        result = _window_result(start, end, "conn", latencies)
        result.update(lanes=params.lanes, verified=completed)
        return result

    return await _guarded(stats, body(), params.timeout)


async def workload_e(params: Params) -> dict[str, Any]:
    """Open idle connections (each does one echo) and read the server's RSS at each count."""
    if not params.server_pid:
        raise LoadError("workload e needs --server-pid")
    pid = params.server_pid
    stats = Stats()
    messages = MessageSet.build("text", 32)

    async def echo_once(conns: Sequence[EchoConnection]) -> None:
        for conn in conns:
            conn.start(1, budget=1)
        await asyncio.gather(*(conn.stop() for conn in conns))

    async def body() -> dict[str, Any]:
        # One connection first, so lazily imported code and first-use caches are not counted.
        warm = await _open_many(params, stats, messages, 1)
        await echo_once(warm)
        await _close_all(warm, 5.0)
        await asyncio.sleep(0.3)
        base_rss = process_rss_kib(pid)
        conns: list[EchoConnection] = []
        points = []
        start = _Snapshot.take(pid, 0)
        try:
            for target in sorted(params.rss_counts):
                fresh = await _open_many(params, stats, messages, target - len(conns))
                await echo_once(fresh)
                conns.extend(fresh)
                await asyncio.sleep(0.5)
                rss = process_rss_kib(pid)
                points.append(
                    {
                        "connections": len(conns),
                        "rss_kib": rss,
                        "kib_per_conn": (rss - base_rss) / len(conns),
                    }
                )
            end = _Snapshot.take(pid, len(conns))
        finally:
            await _close_all(conns, 60.0)
        result = _window_result(start, end, "conn")
        result.update(
            base_rss_kib=base_rss,
            points=points,
            kib_per_conn=points[-1]["kib_per_conn"],
            verified=stats.received,
        )
        for point in points:
            result[f"kib_per_conn_{point['connections']}"] = point["kib_per_conn"]
        return result

    return await _guarded(stats, body(), params.timeout * 3)


async def workload_f(params: Params) -> dict[str, Any]:
    """One probe connection's latency while ``busy`` other connections ping-pong."""
    stats = Stats()
    messages = MessageSet.build("text", 32)

    async def body() -> dict[str, Any]:
        busy = await _open_many(params, stats, messages, params.busy, record=False)
        probe = await _connect(params, stats, messages, params.busy, record=True)
        conns = [*busy, probe]
        try:
            result = await _timed_echo(params, stats, conns, 1)
        finally:
            await _close_all(conns, 20.0)
        result.update(busy_connections=params.busy, probe_messages=probe.received)
        return result

    return await _guarded(stats, body(), params.timeout)


WORKLOADS: dict[str, Callable[[Params], Awaitable[dict[str, Any]]]] = {
    "a": workload_a,
    "b": workload_b,
    "c": workload_c,
    "d": workload_d,
    "e": workload_e,
    "f": workload_f,
    "scale": workload_scale,
}

DESCRIPTIONS = {
    "a": "1 conn ping-pong, 32 B text",
    "b": "64 conns x 16 in flight, 32 B text",
    "c": "1 conn ping-pong, 64 KiB binary",
    "d": "connect + handshake + 1 echo + close",
    "e": "RSS per idle connection",
    "f": "probe latency, 1,000 busy conns",
    "scale": "N conns ping-pong, S bytes",
}


def raise_nofile_limit(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE's soft limit toward ``wanted`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


async def run_workloads(names: Sequence[str], params: Params) -> list[dict[str, Any]]:
    """Run each named workload in turn and return one result dict per workload."""
    results = []
    for name in names:
        result = await WORKLOADS[name](params)
        result["workload"] = name
        result["description"] = DESCRIPTIONS[name]
        results.append(result)
    return results


def _run(coroutine: Coroutine[Any, Any, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run on uvloop when it is installed (it is in the bench and dev extras)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _quick(params: Params) -> None:
    params.duration = 0.5
    params.warmup = 0.15
    params.rss_counts = (300,)
    params.busy = 100
    params.lanes = 4


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--server-pid", type=int, help="server process, for CPU and RSS")
    parser.add_argument("--workload", default="a,b,c,d,e,f", help="comma-separated names")
    parser.add_argument("--quick", action="store_true", help="about half a second each")
    parser.add_argument("--duration", type=float, help="timed window, seconds")
    parser.add_argument("--warmup", type=float, help="untimed traffic before the window")
    parser.add_argument("--connections", type=int, help="b and scale: connections")
    parser.add_argument("--inflight", type=int, help="b: messages in flight per connection")
    parser.add_argument("--size", type=int, help="scale: message size in bytes")
    parser.add_argument("--kind", choices=("text", "binary"), help="scale: message kind")
    parser.add_argument("--lanes", type=int, help="d: concurrent connect/close loops")
    parser.add_argument("--rss-counts", help="e: comma-separated connection counts")
    parser.add_argument("--busy", type=int, help="f: busy connections beside the probe")
    parser.add_argument("--timeout", type=float, help="per workload, seconds")
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU")
    args = parser.parse_args(argv)

    params = Params(host=args.host, port=args.port, path=args.path, server_pid=args.server_pid)
    if args.quick:
        _quick(params)
    for name in ("duration", "warmup", "connections", "inflight", "size", "kind", "lanes"):
        if getattr(args, name) is not None:
            setattr(params, name, getattr(args, name))
    if args.busy is not None:
        params.busy = args.busy
    if args.timeout is not None:
        params.timeout = args.timeout
    if args.rss_counts:
        params.rss_counts = tuple(int(n) for n in args.rss_counts.split(","))
    names = [n.strip() for n in args.workload.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; choose from {sorted(WORKLOADS)}")
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    raise_nofile_limit()

    try:
        results = _run(run_workloads(names, params))
    except (LoadError, OSError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
