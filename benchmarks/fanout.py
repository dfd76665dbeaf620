"""Fan-out benchmark: one published message delivered to 1,000 and 10,000 subscribed sockets.

::

    python -m benchmarks.fanout                 # spikard and the peers, memory and Redis (minutes)
    python -m benchmarks.fanout --quick         # a few seconds: 200 sockets, spikard, in-memory
    python -m benchmarks.fanout --servers spikard,socketio --modes redis --sizes 1000

For every server and mode it starts the server (``memory``: one process and the in-memory
broker; ``redis``: ``--workers 2`` processes sharing the port with SO_REUSEPORT and a Redis
broker, on a ``redis-server`` this run starts on a free loopback port), starts client
processes that open the sockets (split between them), and for each size opens sockets up to
that size, all subscribed to one channel. Then, round after round, it publishes one message
(an HTTP POST to the server, whose handler calls the broker's publish; with Redis, to
whichever worker the connection landed on) and waits until every socket received it.

The message carries its publish time (``time.monotonic_ns()``, taken just before the POST
is written; CLOCK_MONOTONIC is one clock for every process on the machine), so each client
records the delivery time of each socket: from publish to receipt by that socket. Reported:
p50/p99 over every delivery of the measured rounds, the time of the last delivery, messages
(deliveries) per second = sockets / time to the last delivery (median over rounds), and the
CPU time of the server processes, of Redis and of the clients per delivery, read from
``/proc`` over the measured rounds. Every socket must receive every message exactly once and
in order, or the measurement fails.

Clients are ``python -m benchmarks.fanout --client ...``: asyncio + uvloop, one
``asyncio.Protocol`` per socket, the handshake and frames of ``benchmarks.loadgen`` (no
WebSocket library), and Socket.IO's framing for the python-socketio peer. A receipt costs
a timestamp, a frame header parse and a ``bytes.find``. Results go to
``benchmarks/results/fanout-latest.json`` and ``.md``; see ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import typing
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .loadgen import (
    _LINGER_ABORT,
    _OP_CLOSE,
    _OP_PING,
    _OP_PONG,
    _OP_TEXT,
    LoadError,
    _Handshake,
    _handshakes,
    _percentile,
    _run,
    client_frame,
    process_cpu_seconds,
    raise_nofile_limit,
)
from .servers import ROOT, free_port, machine_info, package_version, server_label, wait_listening

RESULTS = ROOT / "benchmarks" / "results"
CHANNEL = "bench"
MARKER = b"FANOUT "

MODES = ("memory", "redis")
MODE_WORKERS = {"memory": 1, "redis": 2}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- the servers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FanoutServer:
    """A server under test: how to start it in each mode and how clients subscribe."""

    name: str
    package: str
    stack: str
    protocol: str  # "raw": ready line + plain text frames; "socketio": Engine.IO/Socket.IO
    path: str

    def command(self, port: int, workers: int, redis_url: str | None) -> list[str]:
        if self.name == "spikard":
            return [
                sys.executable,
                "-m",
                "spikard",
                "benchmarks.peers.fanout_spikard:app",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
            ]
        command = [sys.executable, "-m", f"benchmarks.peers.fanout_{self.name}"]
        command += ["--port", str(port), "--workers", str(workers)]
        return command + (["--redis", redis_url] if redis_url else [])

    def env(self, redis_url: str | None) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("SPIKARD_FANOUT_REDIS", None)
        if self.name == "spikard" and redis_url:
            env["SPIKARD_FANOUT_REDIS"] = redis_url
        return env

    def label(self) -> str:
        return server_label(self.name, self.package)


SERVERS: dict[str, FanoutServer] = {
    server.name: server
    for server in (
        FanoutServer(
            "spikard",
            "spikard",
            "spikard app.broker (MemoryBroker / RedisBroker), stream handler forwarding "
            "subscription.messages(); python -m spikard [--workers 2]",
            "raw",
            f"/sub/{CHANNEL}",
        ),
        FanoutServer(
            "socketio",
            "python-socketio",
            "python-socketio AsyncServer (rooms; AsyncRedisManager for Redis) on uvicorn "
            "(h11, wsproto, uvloop), WebSocket transport only",
            "socketio",
            "/socket.io/?EIO=4&transport=websocket",
        ),
        FanoutServer(
            "broadcaster",
            "broadcaster",
            "broadcaster Broadcast (memory:// / redis://) + Starlette WebSocketRoute on "
            "uvicorn (h11, wsproto, uvloop)",
            "raw",
            f"/sub/{CHANNEL}",
        ),
    )
}
BASELINE = "spikard"


# ---- the client process ----------------------------------------------------------------------

_HANDSHAKING, _SETUP, _READY, _CLOSED = 0, 1, 2, 3
# Socket.IO setup steps: Engine.IO open packet, namespace connect, join ack.
_SIO_OPEN, _SIO_CONNECT, _SIO_JOIN = 0, 1, 2
_SIO_PING = client_frame(_OP_TEXT, b"3")  # the answer to an Engine.IO ping ("2")


class Subscriber(asyncio.Protocol):
    """One subscribed socket: handshake, subscribe, then timestamp every message."""

    def __init__(self, client: Client, handshake: _Handshake) -> None:
        self.client = client
        self.handshake = handshake
        self.transport: asyncio.Transport | None = None
        self.state = _HANDSHAKING
        self.sio_step = _SIO_OPEN
        self.buf = bytearray()
        self.next_seq = 0
        self.server_pid = 0
        self.ready: asyncio.Future[None] = client.loop.create_future()

    # -- asyncio callbacks --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.transport.write(self.handshake.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if self.state == _HANDSHAKING:
            data = self._handshake_data(data)
            if not data:
                return
        buf = self.buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data
        end = len(view)
        pos = 0
        while end - pos >= 2:
            length = view[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = (view[pos + 2] << 8) | view[pos + 3]
                head = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(view[pos + 2 : pos + 10], "big")
                head = 10
            frame_end = pos + head + length
            if frame_end > end:
                break
            first = view[pos]
            if first == 0x81 and self.state == _READY:  # a text frame, FIN set: the hot path
                self._message(bytes(view[pos + head : frame_end]), now)
            else:
                self._other(first, bytes(view[pos + head : frame_end]))
            pos = frame_end
        if pos == end:
            if buf:
                self.buf = bytearray()
        elif view is buf:
            del buf[:pos]
        else:
            self.buf = bytearray(view[pos:])

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state != _CLOSED:
            self._fail(f"connection lost ({exc!r})")

    # -- frames --

    def _message(self, payload: bytes, now: int) -> None:
        start = payload.find(MARKER)
        if start < 0:
            if payload == b"2":  # Engine.IO ping
                self._write(_SIO_PING)
                return
            self._fail(f"unexpected message {payload[:60]!r}")
            return
        fields = payload[start + len(MARKER) :].split(b" ", 2)
        seq = int(fields[0])
        if seq != self.next_seq:
            self._fail(f"got message {seq} where {self.next_seq} was due")
            return
        self.next_seq = seq + 1
        self.client.received(seq, now - int(fields[1]), now)

    def _other(self, first: int, payload: bytes) -> None:
        opcode = first & 0x0F
        if opcode == _OP_PING:
            self._write(client_frame(_OP_PONG, payload))
        elif opcode == _OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self._fail(f"the server closed with {code} {payload[2:]!r}")
        elif first != 0x81:
            self._fail(f"unexpected frame: opcode {opcode}, FIN {bool(first & 0x80)}")
        elif self.client.protocol == "socketio":
            self._socketio_setup(payload)
        elif payload.startswith(b"ready "):
            self.server_pid = int(payload[6:])
            self._ready()
        else:
            self._fail(f"expected 'ready <pid>', got {payload[:60]!r}")

    def _socketio_setup(self, payload: bytes) -> None:
        if payload == b"2":
            self._write(_SIO_PING)
        elif self.sio_step == _SIO_OPEN and payload.startswith(b"0"):
            self.sio_step = _SIO_CONNECT
            self._write(client_frame(_OP_TEXT, b"40"))
        elif self.sio_step == _SIO_CONNECT and payload.startswith(b"40"):
            self.sio_step = _SIO_JOIN
            join = json.dumps(["join", self.client.channel]).encode()
            self._write(client_frame(_OP_TEXT, b"421" + join))
        elif self.sio_step == _SIO_JOIN and payload.startswith(b"431["):
            self.server_pid = int(payload[4:].rstrip(b"]"))
            self._ready()
        else:
            self._fail(f"unexpected Socket.IO packet {payload[:60]!r}")

    def _handshake_data(self, data: bytes) -> bytes:
        """Consume the 101 response; return the bytes after it (b"" while incomplete)."""
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return b""
        head = bytes(self.buf[:end]).decode("latin-1")
        rest = bytes(self.buf[end + 4 :])
        self.buf = bytearray()
        lines = head.split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            self._fail(f"handshake refused: {lines[0]!r}")
            return b""
        accept = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-accept":
                accept = value.strip().encode("latin-1")
        if accept != self.handshake.accept:
            self._fail(f"bad Sec-WebSocket-Accept {accept!r}")
            return b""
        self.state = _SETUP
        return rest

    def _ready(self) -> None:
        self.state = _READY
        self.next_seq = self.client.next_seq  # sockets opened later join at the next message
        if not self.ready.done():
            self.ready.set_result(None)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, message: str) -> None:
        self.client.fail(message)
        if not self.ready.done():
            self.ready.set_exception(LoadError(message))
            self.ready.exception()  # retrieved: the client reports it
        self.abort()

    def abort(self) -> None:
        """Drop the socket at once (RST, SO_LINGER 0): nothing lingers in TIME_WAIT."""
        self.state = _CLOSED
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
        transport.abort()


@dataclass
class Client:
    """The sockets of one client process and what they received."""

    loop: asyncio.AbstractEventLoop
    host: str
    port: int
    path: str
    protocol: str
    channel: str
    concurrency: int
    subscribers: list[Subscriber] = field(default_factory=list)
    latencies: dict[int, list[int]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)
    error: str | None = None
    next_seq: int = 0
    handshakes: list[_Handshake] = field(default_factory=list)

    def received(self, seq: int, latency: int, now: int) -> None:
        samples = self.latencies.get(seq)
        if samples is None:
            samples = self.latencies[seq] = []
            self.counts[seq] = 0
            self.next_seq = seq + 1
        samples.append(latency)
        count = self.counts[seq] = self.counts[seq] + 1
        if count == len(self.subscribers):
            self.last[seq] = now
            _reply({"op": "done", "seq": seq, "last_ns": now})

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
            _reply({"op": "error", "error": message})

    async def open(self, total: int, timeout: float) -> dict[str, Any]:
        """Open sockets until there are ``total``, ``concurrency`` handshakes at a time."""
        if not self.handshakes:
            self.handshakes = _handshakes(self.host, self.port, self.path)
        started = time.perf_counter()
        wanted = total - len(self.subscribers)
        next_index = len(self.subscribers)

        async def opener() -> None:
            nonlocal next_index
            while next_index < total and self.error is None:
                index = next_index
                next_index += 1
                handshake = self.handshakes[index % len(self.handshakes)]
                _, conn = await self.loop.create_connection(
                    functools.partial(Subscriber, self, handshake), self.host, self.port
                )
                await conn.ready
                self.subscribers.append(conn)

        workers = [opener() for _ in range(max(1, min(self.concurrency, wanted)))]
        await asyncio.wait_for(asyncio.gather(*workers), timeout)
        pids: dict[str, int] = {}
        for conn in self.subscribers:
            pids[str(conn.server_pid)] = pids.get(str(conn.server_pid), 0) + 1
        return {
            "op": "opened",
            "total": len(self.subscribers),
            "seconds": time.perf_counter() - started,
            "server_pids": pids,
        }

    def close(self) -> None:
        for conn in self.subscribers:
            conn.abort()


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _client_main(args: argparse.Namespace) -> None:
    """Serve the coordinator's commands, one JSON object per line on stdin."""
    loop = asyncio.get_running_loop()
    client = Client(
        loop, args.host, args.port, args.path, args.protocol, args.channel, args.concurrency
    )
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            command = json.loads(line)
            op = command["op"]
            if op == "open":
                try:
                    _reply(await client.open(command["total"], command["timeout"]))
                except (OSError, LoadError, asyncio.TimeoutError) as exc:
                    client.fail(f"opening sockets: {type(exc).__name__}: {exc}")
            elif op == "count":
                _reply({"op": "count", "seq": command["seq"], "received": client.counts})
            elif op == "samples":
                wanted = set(command["seqs"])
                samples = {s: v for s, v in client.latencies.items() if s in wanted}
                _reply({"op": "samples", "latencies_ns": samples})
            elif op == "quit":
                return
    finally:
        client.close()


# ---- processes -------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """``pid`` and all its descendants (from the parent pids in /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as file:
                ppid = int(file.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(parents.get(current, ()))
    return tree


def _cpu(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += process_cpu_seconds(pid)
    return total


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process (it passes it on to its workers), then SIGKILL its whole group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # its session: workers left behind, if any
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5.0)


@contextlib.contextmanager
def _process(
    command: list[str], log_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in a session of its own, output to ``log_path``; stop it on exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        _stop_group(proc)


@contextlib.contextmanager
def running_redis(log_dir: Path) -> Iterator[tuple[str, int]]:
    """A throwaway ``redis-server`` on a free loopback port: yields (url, pid)."""
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxclients",
        "1000",
    ]
    with _process(command, log_dir / "fanout-redis.log") as proc:
        wait_listening(proc, port, 10.0)
        yield f"redis://127.0.0.1:{port}/0", proc.pid


class ClientProcess:
    """A client process driven through its stdin and stdout, one JSON object per line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.done: dict[int, int] = {}
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.error: str | None = None
        self.changed = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, server: FanoutServer, port: int, concurrency: int) -> ClientProcess:
        command = [sys.executable, "-m", "benchmarks.fanout", "--client"]
        command += ["--port", str(port), "--path", server.path, "--protocol", server.protocol]
        command += ["--channel", CHANNEL, "--concurrency", str(concurrency)]
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                if self.error is None:
                    self.error = f"client process exited ({self.proc.returncode})"
                self.changed.set()
                return
            message = json.loads(line)
            if message["op"] == "done":
                self.done[message["seq"]] = message["last_ns"]
                self.changed.set()
            elif message["op"] == "error":
                self.error = self.error or message["error"]
                self.changed.set()
            else:
                await self.replies.put(message)

    async def ask(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        get = asyncio.ensure_future(self.replies.get())
        failed = asyncio.ensure_future(self.changed.wait())
        try:
            while True:
                await asyncio.wait({get, failed}, timeout=timeout, return_when="FIRST_COMPLETED")
                if get.done():
                    return get.result()
                if self.error is not None:
                    raise LoadError(self.error)
                if not failed.done():
                    raise LoadError(f"client did not answer {command['op']!r} in {timeout:g} s")
                self.changed.clear()
                failed = asyncio.ensure_future(self.changed.wait())
        finally:
            get.cancel()
            failed.cancel()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"op": "quit"}\n')
            await self.proc.stdin.drain()
        try:
            await asyncio.wait_for(self.proc.wait(), 10.0)
        except asyncio.TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


# ---- publishing ------------------------------------------------------------------------------


class Publisher:
    """A keep-alive HTTP/1.1 connection that POSTs to ``/publish/{channel}``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Publisher:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def publish(self, seq: int, size: int) -> tuple[int, str]:
        """Publish message ``seq`` (``size`` bytes, padded); return (publish time, answer)."""
        t0 = time.monotonic_ns()
        text = f"{MARKER.decode()}{seq} {t0} "
        body = (text + "x" * max(0, size - len(text))).encode()
        self.writer.write(
            f"POST /publish/{CHANNEL} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        answer = (await self.reader.readexactly(length)).decode("utf-8", "replace")
        if b" 200 " not in status + b" ":
            raise LoadError(f"publish answered {status.decode('latin-1')!r}: {answer[:80]!r}")
        return t0, answer

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


# ---- one server, one mode --------------------------------------------------------------------


@dataclass
class Plan:
    sizes: tuple[int, ...]
    rounds: dict[int, int]
    warmup: int
    clients: int
    size: int
    concurrency: int
    pause: float
    round_timeout: float
    open_timeout: float


def _share(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def _measure_size(
    plan: Plan,
    clients: list[ClientProcess],
    publisher: Publisher,
    connections: int,
    pids: dict[str, list[int]],
    first_seq: int,
) -> tuple[dict[str, Any], int]:
    """Publish warmup + measured rounds to ``connections`` sockets; return (result, next seq)."""
    rounds = plan.rounds[connections]
    seq = first_seq
    spans: list[float] = []
    answers: set[str] = set()
    measured: list[int] = []
    cpu_start: dict[str, float] = {}
    for index in range(plan.warmup + rounds):
        if index == plan.warmup:
            cpu_start = {name: _cpu(group) for name, group in pids.items()}
            window_start = time.perf_counter()
        for client in clients:
            client.changed.clear()
        t0, answer = await publisher.publish(seq, plan.size)
        answers.add(answer)
        deadline = time.monotonic() + plan.round_timeout
        while not all(seq in c.done for c in clients):
            errors = [c.error for c in clients if c.error]
            if errors:
                raise LoadError(errors[0])
            left = deadline - time.monotonic()
            if left <= 0:
                counts = [await c.ask({"op": "count", "seq": seq}, 5.0) for c in clients]
                got = sum(int(c["received"].get(str(seq), 0)) for c in counts)
                raise LoadError(
                    f"message {seq}: {got} of {connections} sockets received it within "
                    f"{plan.round_timeout:g} s"
                )
            waits = [asyncio.ensure_future(c.changed.wait()) for c in clients]
            await asyncio.wait(waits, timeout=left, return_when="FIRST_COMPLETED")
            for wait in waits:
                wait.cancel()
            for client in clients:
                client.changed.clear()
        if index >= plan.warmup:
            measured.append(seq)
            spans.append((max(c.done[seq] for c in clients) - t0) / 1e9)
        seq += 1
        await asyncio.sleep(plan.pause)
    window = time.perf_counter() - window_start - plan.pause
    cpu = {name: _cpu(group) - cpu_start[name] for name, group in pids.items()}
    latencies: list[int] = []
    for client in clients:
        reply = await client.ask({"op": "samples", "seqs": measured}, 30.0)
        for samples in reply["latencies_ns"].values():
            latencies.extend(samples)
    latencies.sort()
    deliveries = connections * rounds
    if len(latencies) != deliveries:
        raise LoadError(f"{len(latencies)} delivery times for {deliveries} deliveries")
    busy = sum(spans)
    result: dict[str, Any] = {
        "connections": connections,
        "rounds": rounds,
        "deliveries": deliveries,
        # _percentile turns ns into us; these are ms
        "p50_ms": _percentile(latencies, 0.50) / 1000.0,
        "p99_ms": _percentile(latencies, 0.99) / 1000.0,
        "last_ms": statistics.median(spans) * 1000.0,
        "round_last_ms": [round(span * 1000.0, 2) for span in spans],
        "msgs_per_s": statistics.median(connections / span for span in spans),
        "window_s": window,
        "fanout_s": busy,
        "server_cpu_s": cpu["server"],
        "server_cpu_us_per_delivery": cpu["server"] / deliveries * 1e6,
        "server_cpu_cores_while_delivering": cpu["server"] / busy,
        "client_cpu_s": cpu["clients"],
        "client_cpu_us_per_delivery": cpu["clients"] / deliveries * 1e6,
        "client_cpu_cores_while_delivering": cpu["clients"] / busy,
        "client_server_cpu_ratio": cpu["clients"] / cpu["server"] if cpu["server"] else None,
        "publish_answers": sorted(answers),
    }
    if "redis" in pids:
        result["redis_cpu_s"] = cpu["redis"]
        result["redis_cpu_ms_per_message"] = cpu["redis"] / rounds * 1e3  # clock ticks: 10 ms
    return result, seq


async def measure(
    server: FanoutServer,
    mode: str,
    plan: Plan,
    redis: tuple[str, int] | None,
    log_dir: Path,
) -> list[dict[str, Any]]:
    """Start ``server`` in ``mode``, measure every size; errors are results."""
    workers = MODE_WORKERS[mode]
    redis_url = redis[0] if redis else None
    port = free_port()
    results: list[dict[str, Any]] = []
    command = server.command(port, workers, redis_url)
    log_path = log_dir / f"fanout-{server.name}-{mode}.log"
    try:
        with _process(command, log_path, server.env(redis_url)) as proc:
            wait_listening(proc, port, 30.0)
            if workers > 1:
                await _wait_workers(proc.pid, workers, 30.0)
            async with _clients(server, port, plan) as clients:
                seq = 0
                for connections in plan.sizes:
                    spread = await _open(clients, connections, plan.open_timeout)
                    pids = {"server": _children(proc.pid), "clients": [c.proc.pid for c in clients]}
                    if redis is not None:
                        pids["redis"] = [redis[1]]
                    # A fresh connection per size: opening thousands of sockets takes longer
                    # than servers keep an idle HTTP connection open.
                    publisher = await Publisher.connect(port)
                    try:
                        result, seq = await _measure_size(
                            plan, clients, publisher, connections, pids, seq
                        )
                    finally:
                        await publisher.close()
                    result.update(
                        server=server.name,
                        mode=mode,
                        workers=workers,
                        client_processes=len(clients),
                        sockets_per_worker=sorted(spread.values(), reverse=True),
                    )
                    results.append(result)
                    log(f"[{mode} {connections:,}] {server.name}: {_brief(result)}")
    except (LoadError, RuntimeError, OSError, EOFError, asyncio.TimeoutError) as exc:
        message = f"{type(exc).__name__}: {exc}"
        log(f"[{mode}] {server.name}: ERROR {message} (log: {log_path})")
        done = {r["connections"] for r in results}
        for connections in plan.sizes:
            if connections not in done:
                results.append(
                    {
                        "server": server.name,
                        "mode": mode,
                        "connections": connections,
                        "error": message,
                    }
                )
    return results


async def _open(clients: list[ClientProcess], total: int, timeout: float) -> dict[str, int]:
    """Open sockets until the clients hold ``total``; return sockets per server pid."""
    shares = _share(total, len(clients))
    replies = await asyncio.gather(
        *(
            c.ask({"op": "open", "total": n, "timeout": timeout}, timeout + 10.0)
            for c, n in zip(clients, shares, strict=True)
        )
    )
    spread: dict[str, int] = {}
    for reply in replies:
        for pid, count in reply["server_pids"].items():
            spread[pid] = spread.get(pid, 0) + count
    return spread


async def _wait_workers(leader: int, workers: int, timeout: float) -> None:
    """Wait until ``workers`` processes under ``leader`` are up (listening takes a moment)."""
    deadline = time.monotonic() + timeout
    while len(_children(leader)) < workers + 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {workers} worker processes after {timeout:g} s")
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # each worker imports the app and binds the port


@contextlib.asynccontextmanager
async def _clients(
    server: FanoutServer, port: int, plan: Plan
) -> AsyncIterator[list[ClientProcess]]:
    clients: list[ClientProcess] = []
    try:
        for _ in range(plan.clients):
            clients.append(await ClientProcess.start(server, port, plan.concurrency))
        yield clients
    finally:
        await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)


def _brief(result: dict[str, Any]) -> str:
    parts = [
        f"p50 {result['p50_ms']:.1f} ms",
        f"p99 {result['p99_ms']:.1f} ms",
        f"{result['msgs_per_s']:,.0f} msgs/s",
        f"server {result['server_cpu_us_per_delivery']:.1f} us/delivery",
        f"client cpu {result['client_server_cpu_ratio']:.2f} x server",
    ]
    if len(result.get("sockets_per_worker", ())) > 1:
        parts.append(f"sockets per worker {result['sockets_per_worker']}")
    return ", ".join(parts)


# ---- the run ---------------------------------------------------------------------------------


async def run_all(
    servers: Sequence[FanoutServer], modes: Sequence[str], plan: Plan, log_dir: Path
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(running_redis(log_dir)) if "redis" in modes else None
        for mode in modes:
            for server in servers:
                results += await measure(
                    server, mode, plan, redis if mode == "redis" else None, log_dir
                )
    return results


def ratios(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """spikard against each peer, per mode and size (the same run), in the run's order."""
    good = {(r["server"], r["mode"], r["connections"]): r for r in results if "error" not in r}
    rows = []
    for peer in results:
        base = good.get((BASELINE, peer["mode"], peer["connections"]))
        if peer["server"] == BASELINE or "error" in peer or base is None:
            continue
        rows.append(
            {
                "peer": peer["server"],
                "mode": peer["mode"],
                "connections": peer["connections"],
                "p50": base["p50_ms"] / peer["p50_ms"],
                "p99": base["p99_ms"] / peer["p99_ms"],
                "msgs_per_s": base["msgs_per_s"] / peer["msgs_per_s"],
                "server_cpu": base["server_cpu_us_per_delivery"]
                / peer["server_cpu_us_per_delivery"],
            }
        )
    return rows


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" if abs(value) < 1000 else f"{value:,.0f}"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| mode | sockets | server | p50 ms | p99 ms | last ms | msgs/s "
        "| server CPU us/delivery | client CPU us/delivery | client/server CPU "
        "| sockets per worker |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in report["results"]:
        head = f"| {r['mode']} | {r['connections']:,} | {r['server']} "
        if "error" in r:
            lines.append(head + f"| error: {r['error']} |" + " |" * 8)
            continue
        spread = " + ".join(f"{n:,}" for n in r["sockets_per_worker"])
        lines.append(
            head + f"| {_num(r['p50_ms'])} | {_num(r['p99_ms'])} | {_num(r['last_ms'])} "
            f"| {r['msgs_per_s']:,.0f} | {_num(r['server_cpu_us_per_delivery'])} "
            f"| {_num(r['client_cpu_us_per_delivery'])} "
            f"| {_num(r['client_server_cpu_ratio'], 2)} | {spread} |"
        )
    if report["ratios"]:
        lines += [
            "",
            "Ratios spikard / peer, same run (p50, p99, server CPU: below 1 is spikard faster "
            "or cheaper; msgs/s: above 1 is spikard faster):",
            "",
            "| mode | sockets | peer | p50 | p99 | msgs/s | server CPU per delivery |",
            "|---|--:|---|--:|--:|--:|--:|",
        ]
        for row in report["ratios"]:
            lines.append(
                f"| {row['mode']} | {row['connections']:,} | {row['peer']} | {row['p50']:.2f} "
                f"| {row['p99']:.2f} | {row['msgs_per_s']:.2f} | {row['server_cpu']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _plan(args: argparse.Namespace) -> Plan:
    if args.quick:
        plan = Plan((200,), {200: 5}, 1, 1, 64, 64, 0.05, 10.0, 20.0)
    else:
        plan = Plan((1000, 10000), {1000: 20, 10000: 6}, 2, 2, 64, 64, 0.2, 60.0, 180.0)
    if args.sizes:
        plan.sizes = tuple(sorted(int(n) for n in args.sizes.split(",")))
    if args.rounds:
        counts = [int(n) for n in args.rounds.split(",")]
        plan.rounds = {size: counts[min(i, len(counts) - 1)] for i, size in enumerate(plan.sizes)}
    else:
        plan.rounds = {s: plan.rounds.get(s, 20 if s < 5000 else 6) for s in plan.sizes}
    for name in ("warmup", "clients", "size", "concurrency"):
        if getattr(args, name) is not None:
            setattr(plan, name, getattr(args, name))
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="200 sockets, spikard, in-memory")
    parser.add_argument("--servers", help=f"comma-separated, of {','.join(SERVERS)}")
    parser.add_argument("--modes", help="comma-separated: memory,redis")
    parser.add_argument("--sizes", help="socket counts, comma-separated (1000,10000)")
    parser.add_argument("--rounds", help="measured messages per size, comma-separated (20,6)")
    parser.add_argument("--warmup", type=int, help="unmeasured messages before each size")
    parser.add_argument("--clients", type=int, help="client processes (2; 1 with --quick)")
    parser.add_argument("--size", type=int, help="message size in bytes (64)")
    parser.add_argument("--concurrency", type=int, help="handshakes in flight per client")
    parser.add_argument("--output", type=Path, help="JSON report (and .md beside it)")
    parser.add_argument("--baseline", action="store_true", help="also keep a dated JSON copy")
    parser.add_argument("--from-json", type=Path, help="print the tables of a saved report")
    # The client process (started by the coordinator, driven through stdin/stdout).
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--protocol", choices=("raw", "socketio"), help=argparse.SUPPRESS)
    parser.add_argument("--channel", default=CHANNEL, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.from_json:
        saved: dict[str, Any] = json.loads(args.from_json.read_text(encoding="utf-8"))
        saved["ratios"] = ratios(saved["results"])
        print(markdown(saved))
        return 0
    raise_nofile_limit()
    if args.client:
        if args.concurrency is None:
            args.concurrency = 64
        _run(_client_main(args))  # type: ignore[arg-type]
        return 0

    default_servers = "spikard" if args.quick else ",".join(SERVERS)
    names = [n.strip() for n in (args.servers or default_servers).split(",") if n.strip()]
    modes = [
        m.strip()
        for m in (args.modes or ("memory" if args.quick else "memory,redis")).split(",")
        if m.strip()
    ]
    unknown = [n for n in names if n not in SERVERS] + [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown server(s) or mode(s) {unknown}")
    if BASELINE in names:  # spikard first, so a ratio compares with a measurement just made
        names.remove(BASELINE)
        names.insert(0, BASELINE)
    missing = [n for n in names if package_version(SERVERS[n].package) is None]
    for name in missing:
        log(
            f"skipping {name}: {SERVERS[name].package} is not installed (pip install -e '.[bench]')"
        )
        names.remove(name)
    if "redis" in modes and (shutil.which("redis-server") is None or not _has_redis_py()):
        log("skipping the redis mode: it needs redis-server and redis-py (spikard[redis])")
        modes.remove("redis")
    if not names or not modes:
        parser.error("nothing left to measure")
    plan = _plan(args)
    max_fds = max(plan.sizes) + 1000
    if raise_nofile_limit(max_fds) < max_fds:
        log(f"warning: RLIMIT_NOFILE is below {max_fds}; large sizes may fail")
    log_dir = RESULTS / "logs"
    servers = [SERVERS[n] for n in names]
    machine = machine_info()
    machine["versions"].update(
        {
            p: package_version(p)
            for p in ("python-socketio", "python-engineio", "broadcaster", "redis")
        }
    )
    machine["redis_server"] = _redis_version() if "redis" in modes else None
    started = time.monotonic()
    results = _run(run_all(servers, modes, plan, log_dir))
    report: dict[str, Any] = {
        "machine": machine,
        "config": {
            "servers": {s.name: s.stack for s in servers},
            "modes": {m: f"{MODE_WORKERS[m]} worker process(es)" for m in modes},
            "sizes": list(plan.sizes),
            "rounds": {str(k): v for k, v in plan.rounds.items()},
            "warmup_rounds": plan.warmup,
            "client_processes": plan.clients,
            "message_bytes": plan.size,
            "quick": args.quick,
            "seconds": round(time.monotonic() - started, 1),
        },
        "results": results,
    }
    report["ratios"] = ratios(results)
    table = markdown(report)
    print(table)
    output: Path = args.output or RESULTS / "fanout-latest.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    output.with_suffix(".md").write_text(table, encoding="utf-8")
    if args.baseline:
        dated = RESULTS / f"baseline-fanout-{time.strftime('%Y-%m-%d')}.json"
        dated.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {output} ({report['config']['seconds']:.0f} s)")
    return 1 if any("error" in r for r in results) else 0


def _has_redis_py() -> bool:
    return importlib.util.find_spec("redis") is not None


def _redis_version() -> str | None:
    try:
        done = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


if __name__ == "__main__":
    sys.exit(main())
