"""Typed messages end to end: spikard's typed handler against decoding by hand.

For each type family (msgspec Struct, pydantic model, dataclass, TypedDict, tagged Struct
union) and message size (about 200 B and 10 KiB of JSON), two echo handlers run in one
server process (asyncio + uvloop, like ``Spikard.run``):

- **A, by hand**: ``async for m in socket: yield enc(dec(m.data))`` with the library's own
  decoder and encoder (``msgspec.json.Decoder(T)`` / ``Encoder``; pydantic's
  ``Model.model_validate_json`` / ``model_dump_json``), sent as text;
- **B, typed**: ``async def h(socket: WebSocket[T]) -> AsyncIterator[T]: async for m in
  socket: yield m`` (spikard's codec decodes, validates and encodes).

The payloads are canonical (written by the family's own encoder), so each echo is byte for
byte the message sent, and the load generator (``benchmarks/loadgen.py``) verifies every
one. It keeps ``--connections`` x ``--inflight`` messages in flight and reports the server's
CPU time per message (``/proc/PID/stat``) and the throughput. A and B run back to back in
each of ``--rounds`` rounds (in alternating order); ``b_over_a`` is the median over the
rounds of B's CPU per message over A's (paired, so that drifting machine noise cancels).
The target is B <= 1.10 x A.

::

    python -m benchmarks.typed_bench                      # the full table (a few minutes)
    python -m benchmarks.typed_bench --quick --output /tmp/typed.json
    python -m benchmarks.typed_bench --in-process         # no network: spikard's own cost

``--in-process`` runs the same A and B handlers through the real socket, adapter and runner
code over a memory connection (the connection contract over prepared messages, every echo
checked), so B minus A is spikard's own per-message CPU time, without the transport. Each cell
is the best of ``--repeat`` runs of ``--messages`` echoes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypedDict

import anyio
import msgspec
import pydantic

from spikard import Spikard, WebSocket, WebSocketConfig, WebSocketMessage
from spikard.connection.contract import EndedCallback, WebSocketConnection
from spikard.connection.state import ConnectionState
from spikard.datastructures import Headers
from spikard.errors import ConnectionClosedOK
from spikard.requests import Request
from spikard.streams.runner import run_session

from . import loadgen
from .peers import MAX_MESSAGE
from .servers import ServerSpec, machine_info, running_server

SIZES = {"200B": 200, "10KiB": 10 * 1024}
FAMILIES = ("struct", "pydantic", "dataclass", "typeddict", "union")
TARGET = 1.10

# ---- the message types: one shape in every family ---------------------------------------------


class SItem(msgspec.Struct):
    id: int
    name: str
    score: float
    active: bool
    tags: list[str]


class PItem(pydantic.BaseModel):
    id: int
    name: str
    score: float
    active: bool
    tags: list[str]


@dataclasses.dataclass
class DItem:
    id: int
    name: str
    score: float
    active: bool
    tags: list[str]


class TItem(TypedDict):
    id: int
    name: str
    score: float
    active: bool
    tags: list[str]


class UAdd(msgspec.Struct, tag_field="type", tag="add"):
    id: int
    name: str
    score: float
    active: bool
    tags: list[str]


class URemove(msgspec.Struct, tag_field="type", tag="remove"):
    id: int
    name: str
    score: float
    active: bool
    tags: list[str]


TYPES: dict[str, Any] = {
    "struct": SItem,
    "pydantic": PItem,
    "dataclass": DItem,
    "typeddict": TItem,
    "union": UAdd | URemove,
}


def _fields(index: int, size: int, padding: int = 0) -> dict[str, Any]:
    """Field values of message ``index``; the tags make up most of ``size`` bytes."""
    return {
        "id": index,
        "name": f"item-{index:04d}" + "x" * padding,
        "score": 0.5 + index,
        "active": index % 2 == 0,
        "tags": [f"tag-{index:02d}-{n:08d}" for n in range(max(0, (size - 100) // 18))],
    }


def _sized(encode: Callable[[dict[str, Any]], bytes], index: int, size: int) -> bytes:
    """The message ``index`` padded (in its name) to exactly ``size`` bytes of JSON."""
    unpadded = len(encode(_fields(index, size)))
    return encode(_fields(index, size, max(0, size - unpadded)))


def payloads(family: str, size: int, variants: int = 8) -> tuple[bytes, ...]:
    """``variants`` distinct canonical messages of ``family`` (each echoed byte for byte)."""
    json_encode = msgspec.json.Encoder().encode

    def encoder(index: int) -> Callable[[dict[str, Any]], bytes]:
        if family == "pydantic":
            return lambda fields: PItem(**fields).model_dump_json().encode()
        if family == "struct":
            return lambda fields: json_encode(SItem(**fields))
        if family == "dataclass":
            return lambda fields: json_encode(DItem(**fields))
        if family == "typeddict":
            return json_encode
        member = UAdd if index % 2 else URemove
        return lambda fields: json_encode(member(**fields))

    return tuple(_sized(encoder(index), index, size) for index in range(variants))


# ---- the server ------------------------------------------------------------------------------


def _by_hand(family: str) -> Callable[[bytes | str], str]:
    """The library's own decode-validate-encode of one message."""
    if family == "pydantic":
        validate = PItem.model_validate_json

        def pydantic_echo(data: bytes | str) -> str:
            return validate(data).model_dump_json()

        return pydantic_echo
    decode = msgspec.json.Decoder(TYPES[family]).decode
    encode = msgspec.json.Encoder().encode

    def msgspec_echo(data: bytes | str) -> str:
        return encode(decode(data)).decode()

    return msgspec_echo


def build_app() -> Spikard:
    """Routes ``/<family>/manual`` (A) and ``/<family>/typed`` (B) for every family."""
    app = Spikard(websocket=WebSocketConfig(max_message_size=MAX_MESSAGE))
    for family in FAMILIES:
        echo = _by_hand(family)

        async def manual(
            socket: WebSocket, echo: Callable[[bytes | str], str] = echo
        ) -> AsyncIterator[str]:
            async for message in socket:
                yield echo(message.data)

        async def typed(socket: WebSocket[Any]) -> AsyncIterator[Any]:
            async for message in socket:
                yield message

        app.add_websocket_route(f"/{family}/manual", manual)
        app.add_websocket_route(
            f"/{family}/typed", typed, receive=TYPES[family], send=TYPES[family]
        )
    return app


def serve(port: int) -> None:
    build_app().run("127.0.0.1", port, log_level="warning")


# ---- the client ------------------------------------------------------------------------------


def message_set(family: str, size: int) -> loadgen.MessageSet:
    sent = payloads(family, size)
    return loadgen.MessageSet(
        "text",
        size,
        sent,
        tuple(loadgen.client_frame(1, p) for p in sent),
        tuple(loadgen.server_frame(1, p) for p in sent),
    )


async def measure(
    port: int, pid: int, path: str, messages: loadgen.MessageSet, args: argparse.Namespace
) -> dict[str, Any]:
    """One timed window of echoes on ``path``, every echo verified."""
    params = loadgen.Params(
        port=port, path=path, server_pid=pid, duration=args.duration, warmup=args.warmup
    )
    stats = loadgen.Stats()

    async def body() -> dict[str, Any]:
        conns = await loadgen._open_many(params, stats, messages, args.connections)
        try:
            return await loadgen._timed_echo(params, stats, conns, args.inflight)
        finally:
            await loadgen._close_all(conns, 10.0)

    return await loadgen._guarded(stats, body(), params.timeout)


async def run_all(port: int, pid: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for family in args.families:
        for size_name in args.sizes:
            messages = message_set(family, SIZES[size_name])
            samples: dict[str, list[dict[str, Any]]] = {"manual": [], "typed": []}
            for round_index in range(args.rounds):
                order = ("manual", "typed") if round_index % 2 == 0 else ("typed", "manual")
                for handler in order:
                    result = await measure(port, pid, f"/{family}/{handler}", messages, args)
                    samples[handler].append(result)
            row = _row(family, size_name, len(messages.payloads[0]), samples)
            rows.append(row)
            print(_line(row), file=sys.stderr, flush=True)
    return rows


def _median(results: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in results))


def _row(
    family: str, size_name: str, size: int, samples: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    a_cpu = _median(samples["manual"], "server_cpu_us_per_unit")
    b_cpu = _median(samples["typed"], "server_cpu_us_per_unit")
    # A and B of one round ran back to back: their ratio shares that moment's machine noise.
    paired = statistics.median(
        b["server_cpu_us_per_unit"] / a["server_cpu_us_per_unit"]
        for a, b in zip(samples["manual"], samples["typed"], strict=True)
    )
    return {
        "family": family,
        "size": size_name,
        "bytes": size,
        "a_server_us_per_msg": round(a_cpu, 2),
        "b_server_us_per_msg": round(b_cpu, 2),
        "b_over_a": round(paired, 3),
        "b_over_a_of_medians": round(b_cpu / a_cpu, 3),
        "a_msgs_per_s": round(_median(samples["manual"], "throughput")),
        "b_msgs_per_s": round(_median(samples["typed"], "throughput")),
        "within_target": paired <= TARGET,
        "samples": samples,
    }


def _line(row: dict[str, Any]) -> str:
    return (
        f"| {row['family']:9} | {row['size']:5} | {row['bytes']:6} | "
        f"{row['a_server_us_per_msg']:8.2f} | {row['b_server_us_per_msg']:8.2f} | "
        f"{row['b_over_a']:5.3f} | {row['a_msgs_per_s']:8} | {row['b_msgs_per_s']:8} |"
    )


TABLE_HEAD = (
    "| family    | size  | bytes  | A us/msg | B us/msg |  B/A  | A msg/s  | B msg/s  |\n"
    "|-----------|-------|--------|----------|----------|-------|----------|----------|"
)


# ---- in process: the stream layer on a memory connection -------------------------------------


class MemoryConnection(WebSocketConnection):
    """The contract over prepared messages; each echo is checked against what was sent."""

    def __init__(self, messages: list[WebSocketMessage]) -> None:
        self.request = Request("GET", "/", Headers([("host", "bench")]))
        self.config = WebSocketConfig()
        self._messages = messages
        self._next = 0
        self._echoed = 0
        self._accepted = False
        self._closed: tuple[int, str] | None = None
        self._on_ended: EndedCallback | None = None

    @property
    def on_ended(self) -> EndedCallback | None:
        return self._on_ended

    @on_ended.setter
    def on_ended(self, callback: EndedCallback | None) -> None:
        self._on_ended = callback

    @property
    def state(self) -> ConnectionState:
        return ConnectionState.OPEN if self._closed is None else ConnectionState.CLOSED

    @property
    def accepted(self) -> bool:
        return self._accepted

    @property
    def rejected(self) -> bool:
        return False

    @property
    def subprotocols(self) -> tuple[str, ...]:
        return ()

    @property
    def subprotocol(self) -> str | None:
        return None

    @property
    def close_code(self) -> int | None:
        return None if self._closed is None else self._closed[0]

    @property
    def close_reason(self) -> str | None:
        return None if self._closed is None else self._closed[1]

    @property
    def peer_close(self) -> tuple[int, str] | None:
        return self._closed

    @property
    def failure(self) -> tuple[int, str] | None:
        return None

    @property
    def queued_messages(self) -> int:
        return len(self._messages) - self._next

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        self._accepted = True

    async def reject(
        self,
        status_code: int = 403,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        raise RuntimeError("not in this benchmark")

    async def receive(self) -> WebSocketMessage:
        message = self.receive_nowait()
        if message is None:
            self._closed = (1000, "")
            raise ConnectionClosedOK(1000)
        return message

    def receive_nowait(self) -> WebSocketMessage | None:
        if self._next == len(self._messages):
            return None
        message = self._messages[self._next]
        self._next += 1
        return message

    async def send(self, message: WebSocketMessage) -> None:
        if message.data != self._messages[self._echoed].data:
            raise AssertionError(f"echo {self._echoed} differs")
        self._echoed += 1

    def discard_incoming(self) -> None:
        self._next = len(self._messages)

    async def ping(self, payload: bytes | None = None) -> Awaitable[object]:
        raise NotImplementedError

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._closed is None:
            self._closed = (code, reason)

    async def wait_closed(self) -> None:
        return None


async def time_route(start: Any, messages: list[WebSocketMessage]) -> float:
    connection = MemoryConnection(messages)
    began = time.process_time()  # CPU time: a busy machine preempts, not counted
    await run_session(connection, start)
    elapsed = time.process_time() - began
    if connection._echoed != len(messages):
        raise AssertionError(f"{connection._echoed} of {len(messages)} echoed")
    return elapsed / len(messages)


async def run_in_process(args: argparse.Namespace) -> list[dict[str, Any]]:
    app = build_app()
    starts = {route.pattern.template: route.handler for route in app.routes}
    rows = []
    for family in args.families:
        for size_name in args.sizes:
            texts = [p.decode() for p in payloads(family, SIZES[size_name])]
            messages = [WebSocketMessage.text(texts[i % len(texts)]) for i in range(args.messages)]
            best = {"manual": float("inf"), "typed": float("inf")}
            for _ in range(args.repeat):
                for handler in ("manual", "typed"):
                    cost = await time_route(starts[f"/{family}/{handler}"], messages)
                    best[handler] = min(best[handler], cost)
            a, b = best["manual"] * 1e6, best["typed"] * 1e6
            row = {
                "family": family,
                "size": size_name,
                "a_us_per_msg": round(a, 3),
                "b_us_per_msg": round(b, 3),
                "overhead_us": round(b - a, 3),
                "b_over_a": round(b / a, 3),
            }
            rows.append(row)
            print(
                f"| {family:9} | {size_name:5} | {a:8.3f} | {b:8.3f} | {b - a:+7.3f} | "
                f"{b / a:5.3f} |",
                file=sys.stderr,
                flush=True,
            )
    return rows


IN_PROCESS_HEAD = (
    "| family    | size  | A us/msg | B us/msg | B - A   |  B/A  |\n"
    "|-----------|-------|----------|----------|---------|-------|"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--serve", action="store_true", help="run the server (internal)")
    parser.add_argument("--port", type=int, default=0, help="the server's port (with --serve)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--sizes", nargs="+", choices=tuple(SIZES), default=list(SIZES))
    parser.add_argument("--rounds", type=int, default=5, help="A/B rounds per cell (median)")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per window")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before a window")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--inflight", type=int, default=8, help="messages in flight per conn")
    parser.add_argument("--quick", action="store_true", help="one short round (smoke test)")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="time the stream layer on a memory connection instead (no network)",
    )
    parser.add_argument("--messages", type=int, default=20000, help="echoes per in-process run")
    parser.add_argument("--repeat", type=int, default=5, help="in-process runs (best of)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.port)
        return 0
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 0.3, 0.1
        args.messages, args.repeat = 2000, 1
    if args.in_process:
        print(IN_PROCESS_HEAD, file=sys.stderr, flush=True)
        rows = anyio.run(run_in_process, args)
        text = json.dumps({"benchmark": "typed_bench --in-process", "rows": rows}, indent=2)
        if args.output:
            args.output.write_text(text + "\n", encoding="utf-8")
        else:
            print(text)
        return 0
    cpus = sorted(os.sched_getaffinity(0))
    spec = ServerSpec("typed-bench", "benchmarks.typed_bench", ("--serve",), "typed", "spikard")
    started = time.time()
    with running_server(spec, cpu=cpus[-1] if len(cpus) > 1 else None) as server:
        if len(cpus) > 1:
            os.sched_setaffinity(0, {cpus[0]})  # the load generator on another core
        print(TABLE_HEAD, file=sys.stderr, flush=True)
        rows = asyncio.run(run_all(server.port, server.pid, args))
    report = {
        "benchmark": "typed_bench",
        "target_b_over_a": TARGET,
        "settings": {k: v for k, v in vars(args).items() if k not in ("output", "serve", "port")},
        "machine": machine_info(),
        "seconds": round(time.time() - started, 1),
        "rows": rows,
    }
    text = json.dumps(report, indent=2, default=str)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
