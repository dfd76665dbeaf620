"""SSE clients for ``benchmarks.sse_fanout``: many raw-socket ``EventSource``-style streams.

``python -m benchmarks.sse_clients --port P --connections N --events E`` opens N streams to
``GET /events``, prints ``ready`` once every stream sent its first comment, then counts
``data:`` events (each carries the publisher's ``time.time()``) until every stream got E of
them or ``--timeout`` passed, prints ``done`` and keeps the streams open until a line comes
on stdin (so that closing them is not counted in the server's CPU), then writes one JSON
object to ``--output``: deliveries, missing deliveries, latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time

REQUEST = b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n"


async def stream(
    port: int,
    events: int,
    ready: asyncio.Event,
    latencies: list[float],
    counts: list[int],
    release: asyncio.Event,
    all_read: asyncio.Event,
    total: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    try:
        writer.write(REQUEST)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readuntil(b": ready")
        ready.set()
        got = 0
        while got < events:
            line = await reader.readline()
            if not line:
                break
            if line.startswith(b"data: "):  # chunk-size lines and blank lines are skipped
                latencies.append(time.time() - float(line[6:].strip()))
                got += 1
        counts.append(got)
        if len(counts) == total:
            all_read.set()
        await release.wait()
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, object]:
    latencies: list[float] = []
    counts: list[int] = []  # one per stream that finished reading
    release, all_read = asyncio.Event(), asyncio.Event()
    readies = [asyncio.Event() for _ in range(args.connections)]
    tasks = [
        asyncio.ensure_future(
            stream(
                args.port, args.events, ready, latencies, counts, release, all_read, len(readies)
            )
        )
        for ready in readies
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), args.timeout)
    print("ready", flush=True)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(all_read.wait(), args.timeout)
    received = sum(counts)
    print("done", flush=True)
    loop = asyncio.get_running_loop()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), args.timeout)
    release.set()
    _, pending = await asyncio.wait(tasks, timeout=10)
    for task in pending:
        task.cancel()
    return {
        "deliveries": received,
        "missing": args.connections * args.events - received,
        "latencies": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--output", required=True, help="JSON file for the results")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.connections + 100)), hard))
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    with open(args.output, "w") as file:
        json.dump(result, file)


if __name__ == "__main__":
    main()
