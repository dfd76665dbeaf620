"""HTTP benchmark (issue 11, speed (b)): one publish delivered to N SSE clients.

``python -m benchmarks.sse_fanout [--clients 1000,10000] [--events 5] [--rounds 1]``

Each server (``benchmarks.peers.http_sse``: spikard's ``EventSourceResponse.from_channel``
on ``app.broker``, spikard's ``@app.sse`` generator reading a subscription, and
sse-starlette's ``EventSourceResponse`` on uvicorn h11 fed by an in-process broadcast) runs
pinned to one CPU; client processes (``benchmarks.sse_clients``) on the other open N streams.
Once all are connected, ``--events`` publishes go out ``--interval`` seconds apart, each
carrying its send time. Reported: the server's CPU over the publishing window per delivery
(N x events), delivery latency p50/p99 and missing deliveries. Target: spikard at most
0.5x sse-starlette's server CPU per delivery.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .loadgen import process_cpu_seconds
from .servers import ROOT, ServerSpec, placement_cpus, running_server

SERVERS = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "spikard", "benchmarks.peers.http_sse", ("--stack", "spikard"),
            "spikard EventSourceResponse.from_channel on app.broker; asyncio + uvloop",
            "spikard",
        ),
        ServerSpec(
            "spikard-generator", "benchmarks.peers.http_sse", ("--stack", "spikard-generator"),
            "spikard @app.sse generator reading app.broker.subscribe; asyncio + uvloop",
            "spikard",
        ),
        ServerSpec(
            "sse-starlette", "benchmarks.peers.http_sse", ("--stack", "sse-starlette"),
            "sse-starlette EventSourceResponse; uvicorn h11; uvloop", "sse-starlette",
        ),
    )
}  # fmt: skip
PER_PROCESS = 2500
"""Streams per client process."""


def _post(port: int, path: str, body: bytes = b"") -> str:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST" if body else "GET", path, body=body)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def measure(spec: ServerSpec, clients: int, args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, client_cpu = placement_cpus("split")
    with tempfile.TemporaryDirectory() as scratch, running_server(spec, cpu=server_cpu) as server:
        procs = []
        for start in range(0, clients, PER_PROCESS):
            count = min(PER_PROCESS, clients - start)
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "benchmarks.sse_clients", "--port", str(server.port),
                    "--connections", str(count), "--events", str(args.events),
                    "--timeout", str(args.timeout),
                    "--output", str(Path(scratch) / f"clients-{start}.json"),
                ],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            if client_cpu is not None:
                os.sched_setaffinity(proc.pid, {client_cpu})
            procs.append(proc)
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{spec.name}: clients did not connect")
        connected = int(_post(server.port, "/count"))
        before = process_cpu_seconds(server.pid)
        started = time.monotonic()
        for _ in range(args.events):
            _post(server.port, "/publish", repr(time.time()).encode())
            time.sleep(args.interval)
        for proc in procs:  # every stream got every event (or the clients gave up)
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "done":
                raise RuntimeError(f"{spec.name}: clients did not finish")
        seconds = time.monotonic() - started
        cpu = process_cpu_seconds(server.pid) - before
        for proc in procs:  # now close the streams (not measured)
            assert proc.stdin is not None
            proc.stdin.write("close\n")
            proc.stdin.close()
        results = []
        for start, proc in zip(range(0, clients, PER_PROCESS), procs, strict=True):
            proc.wait(args.timeout + 30)  # the clients give up after --timeout
            results.append(json.loads((Path(scratch) / f"clients-{start}.json").read_text()))
    latencies = sorted(x for r in results for x in r["latencies"])
    deliveries = sum(r["deliveries"] for r in results)
    return {
        "clients": clients,
        "connected": connected,
        "deliveries": deliveries,
        "missing": sum(r["missing"] for r in results),
        "server_cpu_us_per_delivery": cpu / max(deliveries, 1) * 1e6,
        "seconds": seconds,
        "p50_ms": latencies[len(latencies) // 2] * 1e3 if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3 if latencies else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--clients", default="1000,10000")
    parser.add_argument("--events", type=int, default=5)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "sse-fanout-latest.json")
    )
    args = parser.parse_args(argv)
    names = args.servers.split(",")
    sizes = [int(n) for n in args.clients.split(",")]
    runs: dict[str, dict[int, list[dict[str, Any]]]] = {n: {s: [] for s in sizes} for n in names}
    for number in range(args.rounds):
        for size in sizes:
            for name in names:
                result = measure(SERVERS[name], size, args)
                runs[name][size].append(result)
                print(
                    f"[round {number + 1}] {name} N={size}: {result}", file=sys.stderr, flush=True
                )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"config": vars(args), "runs": runs}, indent=2))
    print("| server | N | server CPU us/delivery | p50 ms | p99 ms | missing |")
    print("|---|--:|--:|--:|--:|--:|")
    for name in names:
        for size in sizes:
            rounds = runs[name][size]
            cost = statistics.median(r["server_cpu_us_per_delivery"] for r in rounds)
            p50 = statistics.median(r["p50_ms"] or 0 for r in rounds)
            p99 = statistics.median(r["p99_ms"] or 0 for r in rounds)
            missing = sum(r["missing"] for r in rounds)
            print(f"| {name} | {size:,} | {cost:.1f} | {p50:.1f} | {p99:.1f} | {missing} |")
    for ours_name in ("spikard", "spikard-generator"):
        if ours_name not in runs or "sse-starlette" not in runs:
            continue
        for size in sizes:
            ratio = statistics.median(
                ours["server_cpu_us_per_delivery"] / theirs["server_cpu_us_per_delivery"]
                for ours, theirs in zip(
                    runs[ours_name][size], runs["sse-starlette"][size], strict=True
                )
            )
            verdict = "met" if ratio <= 0.5 else "missed"
            print(
                f"N={size:,}: {ours_name} / sse-starlette = {ratio:.2f} (target <= 0.5: {verdict})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
