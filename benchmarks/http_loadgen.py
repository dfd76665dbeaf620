"""Load generator for ``benchmarks.http_bench``: keep-alive ``GET /`` over raw sockets.

``python -m benchmarks.http_loadgen --port P --server-pid PID --connections N --duration S``
opens N keep-alive connections; each sends one request at a time (no pipelining), reads
the whole response (``content-length`` framing) and checks its body. After ``--warmup``
seconds of untimed traffic it measures for ``--duration`` seconds: requests, latencies,
the server's CPU time (utime + stime of PID) and its own. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from .loadgen import own_cpu_seconds, process_cpu_seconds

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: spikard-bench\r\n\r\n"
EXPECTED = b"Hello, world!"


class BadResponse(RuntimeError):
    """The server answered something other than a 200 with the expected body."""


async def one_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise BadResponse(head[:80].decode("latin-1"))
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise BadResponse("no content-length")
    body = await reader.readexactly(length)
    if body != EXPECTED:
        raise BadResponse(f"body {body[:40]!r}")


async def client(
    port: int, state: dict[str, object], latencies: list[float], stop_at: list[float]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < stop_at[0]:
            started = time.perf_counter()
            await asyncio.wait_for(one_request(reader, writer), 10.0)
            if state["timing"]:
                latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    state: dict[str, object] = {"timing": False}
    latencies: list[float] = []
    stop_at = [time.monotonic() + args.warmup + args.duration + 3600.0]
    tasks = [
        asyncio.ensure_future(client(args.port, state, latencies, stop_at))
        for _ in range(args.connections)
    ]
    await asyncio.sleep(args.warmup)
    server_before, own_before = process_cpu_seconds(args.server_pid), own_cpu_seconds()
    started = time.monotonic()
    state["timing"] = True
    await asyncio.sleep(args.duration)
    state["timing"] = False
    seconds = time.monotonic() - started
    server_cpu = process_cpu_seconds(args.server_pid) - server_before
    own_cpu = own_cpu_seconds() - own_before
    stop_at[0] = 0.0
    await asyncio.gather(*tasks)
    latencies.sort()
    count = len(latencies)
    if count == 0:
        raise BadResponse("no request completed in the timed window")
    return {
        "requests": count,
        "seconds": seconds,
        "throughput": count / seconds,
        "server_cpu_us_per_request": server_cpu / count * 1e6,
        "server_cpu_util": server_cpu / seconds,
        "client_cpu_us_per_request": own_cpu / count * 1e6,
        "p50_us": latencies[count // 2] * 1e6,
        "p99_us": latencies[min(count - 1, int(count * 0.99))] * 1e6,
        "connections": args.connections,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        print(json.dumps(asyncio.run(run(args))))
    else:
        print(json.dumps(uvloop.run(run(args))))


if __name__ == "__main__":
    main()
