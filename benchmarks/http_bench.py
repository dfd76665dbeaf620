"""HTTP benchmark (issue 11, speed (a)): keep-alive ``GET /`` answering 13 bytes of text.

``python -m benchmarks.http_bench [--rounds 5] [--duration 2] [--connections 8] [--quick]``

Each round starts every server in turn (``benchmarks.peers.http_hello``, server pinned to
one CPU, the load generator ``benchmarks.http_loadgen`` to another) and measures the
server's CPU time per request over the timed window. Ratios are spikard's cost over each
peer's, median of the per-round ratios, so that all servers of a round share the machine's
noise. Target: spikard at most 0.6x uvicorn (h11) + Starlette.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .servers import ROOT, ServerSpec, machine_info, placement_cpus, running_server

SERVERS = {
    spec.name: spec
    for spec in (
        ServerSpec(
            "spikard",
            "benchmarks.peers.http_hello",
            ("--stack", "spikard"),
            "spikard; asyncio + uvloop (default runner)",
            "spikard",
        ),
        ServerSpec(
            "uvicorn-h11",
            "benchmarks.peers.http_hello",
            ("--stack", "uvicorn-h11"),
            "uvicorn --http h11 + Starlette; uvloop; access log off",
            "uvicorn",
        ),
        ServerSpec(
            "uvicorn-httptools",
            "benchmarks.peers.http_hello",
            ("--stack", "uvicorn-httptools"),
            "uvicorn --http httptools + Starlette; uvloop; access log off (reference)",
            "uvicorn",
        ),
        ServerSpec(
            "aiohttp",
            "benchmarks.peers.http_hello",
            ("--stack", "aiohttp"),
            "aiohttp web server; uvloop; access log off",
            "aiohttp",
        ),
    )
}
BASELINE = "spikard"
TARGET = ("uvicorn-h11", 0.6)


def measure(spec: ServerSpec, args: argparse.Namespace) -> dict[str, Any]:
    server_cpu, client_cpu = placement_cpus("split")
    with running_server(spec, cpu=server_cpu) as server:
        command = [
            sys.executable,
            "-m",
            "benchmarks.http_loadgen",
            "--port",
            str(server.port),
            "--server-pid",
            str(server.pid),
            "--connections",
            str(args.connections),
            "--duration",
            str(args.duration),
            "--warmup",
            str(args.warmup),
        ]
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        if client_cpu is not None:
            os.sched_setaffinity(proc.pid, {client_cpu})
        out, _ = proc.communicate(timeout=args.duration + args.warmup + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"load generator failed against {spec.name}")
        result: dict[str, Any] = json.loads(out)
        return result


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def render(report: dict[str, Any]) -> str:
    runs: dict[str, list[dict[str, Any]]] = report["runs"]
    lines = [
        f"Run of {report['machine'].get('date', '?')}: rounds {report['config']['rounds']}, "
        f"{report['config']['connections']} keep-alive connections, "
        f"{report['config']['duration']} s per measurement.",
        "",
        "| server | server CPU us/request | requests/s | p50 us | p99 us | client CPU us/request |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for name, rounds in runs.items():
        lines.append(
            f"| {SERVERS[name].label()} "
            f"| {_median([r['server_cpu_us_per_request'] for r in rounds]):.1f} "
            f"| {_median([r['throughput'] for r in rounds]):,.0f} "
            f"| {_median([r['p50_us'] for r in rounds]):.0f} "
            f"| {_median([r['p99_us'] for r in rounds]):.0f} "
            f"| {_median([r['client_cpu_us_per_request'] for r in rounds]):.1f} |"
        )
    lines += [
        "",
        "| spikard / peer (server CPU per request, median of per-round ratios) | ratio |",
        "|---|--:|",
    ]
    for peer, value in report["ratios"].items():
        lines.append(f"| {peer} | {value:.2f} |")
    peer, limit = TARGET
    if peer in report["ratios"]:
        value = report["ratios"][peer]
        verdict = "met" if value <= limit else "missed"
        lines += ["", f"Target: spikard <= {limit} x {peer}: {value:.2f} ({verdict})."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="one short round, spikard only")
    parser.add_argument(
        "--output", default=str(ROOT / "benchmarks" / "results" / "http-latest.json")
    )
    args = parser.parse_args(argv)
    names = [name for name in args.servers.split(",") if name]
    unknown = set(names) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    if args.quick:
        names, args.rounds, args.duration, args.warmup = [BASELINE], 1, 0.5, 0.2
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for number in range(args.rounds):
        for name in names:
            result = measure(SERVERS[name], args)
            result["round"] = number
            runs[name].append(result)
            print(
                f"[round {number + 1}/{args.rounds}] {name}: "
                f"{result['server_cpu_us_per_request']:.1f} us/request, "
                f"{result['throughput']:,.0f} requests/s",
                file=sys.stderr,
                flush=True,
            )
    ratios = {}
    if BASELINE in runs:
        for peer in names:
            if peer == BASELINE:
                continue
            ratios[peer] = _median(
                [
                    ours["server_cpu_us_per_request"] / theirs["server_cpu_us_per_request"]
                    for ours, theirs in zip(runs[BASELINE], runs[peer], strict=True)
                ]
            )
    config = {k: getattr(args, k) for k in ("rounds", "duration", "warmup", "connections")}
    report = {"machine": machine_info(), "config": config, "runs": runs, "ratios": ratios}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2))
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
