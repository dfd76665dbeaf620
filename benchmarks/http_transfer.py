"""HTTP benchmark (issue 11, speed (c)): a 100 MiB streamed download and upload.

``python -m benchmarks.http_transfer [--servers spikard,uvicorn-h11] [--mib 100]``

``GET /download`` streams 100 MiB in 64 KiB chunks, read and dropped by a raw-socket
client; ``POST /upload`` sends 100 MiB chunked and the route counts what
``request.stream()`` yields. The server's RSS is sampled every 50 ms: a server that holds
bodies in memory grows by the body's size, a streaming one stays flat. Reports MiB/s and
RSS before, at its peak and after, per server and direction.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .http_bench import SERVERS
from .loadgen import process_rss_kib
from .servers import ROOT, placement_cpus, running_server

MIB = 1024 * 1024


def download(port: int, size: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /download HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = 0
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    if received < size:
        raise RuntimeError(f"download ended after {received} bytes")
    return received


def upload(port: int, size: int) -> int:
    piece = b"y" * 65536
    frame = b"%x\r\n" % len(piece) + piece + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n"
        )
        for _ in range(size // len(piece)):
            sock.sendall(frame)
        sock.sendall(b"0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    if str(size).encode() not in reply.split(b"\r\n\r\n", 1)[-1]:
        raise RuntimeError(f"upload answer: {reply[:200]!r}")
    return size


def sampled(pid: int, action: Callable[[], int]) -> dict[str, Any]:
    """Run ``action`` while sampling ``pid``'s RSS every 50 ms."""
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(process_rss_kib(pid))
            done.wait(0.05)

    before = process_rss_kib(pid)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    size = action()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    time.sleep(0.2)
    return {
        "mib_per_s": size / MIB / seconds,
        "rss_before_kib": before,
        "rss_peak_kib": max(samples or [before]),
        "rss_after_kib": process_rss_kib(pid),
        "seconds": seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", default="spikard,uvicorn-h11")
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "http-transfer-latest.json")
    )
    args = parser.parse_args(argv)
    size = args.mib * MIB
    server_cpu, _ = placement_cpus("split")
    results: dict[str, dict[str, Any]] = {}
    for name in args.servers.split(","):
        with running_server(SERVERS[name], cpu=server_cpu) as server:
            download(server.port, 1)  # warm up the route before measuring
            results[name] = {
                "download": sampled(server.pid, lambda: download(server.port, size)),
                "upload": sampled(server.pid, lambda: upload(server.port, size)),
            }
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({"mib": args.mib, "results": results}, indent=2))
    print("| server | direction | MiB/s | RSS before MiB | peak | after |")
    print("|---|---|--:|--:|--:|--:|")
    for name, directions in results.items():
        for direction, r in directions.items():
            print(
                f"| {name} | {direction} ({args.mib} MiB) | {r['mib_per_s']:.0f} "
                f"| {r['rss_before_kib'] / 1024:.1f} | {r['rss_peak_kib'] / 1024:.1f} "
                f"| {r['rss_after_kib'] / 1024:.1f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
