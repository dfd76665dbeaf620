"""What ``spikard.ops`` operators cost per message, over an echo, against the bare echo.

::

    python -m benchmarks.ops_bench                       # 5 rounds, workloads a and b, asyncio
    python -m benchmarks.ops_bench --rounds 3 --backends asyncio,trio --duration 2
    python -m benchmarks.ops_bench --serve pipeline --port 8000   # one server, by hand

Every variant is an echo server on ``/`` (so the load generator of ``benchmarks.run``
checks every reply), built from the stream handler of ``benchmarks/peers/spikard_stream.py``
with operators in the way:

``bare``         ``async for message in socket: yield message``
``rate_limit``   ``socket | ops.rate_limit(1e9, 1e9)`` (a bucket that never runs dry)
``batch``        ``socket | ops.batch(32, 0.001)``, each list sent message by message
``map``          ``socket | ops.map(identity)``
``pipeline``     ``socket | rate_limit | batch | map``, the lists sent message by message
``batch0``, ``pipeline0``  the same with ``batch(32, 0)``: a batch is what is already queued

Workload ``a`` is one connection with one message in flight, and ``b`` 64 connections with
16 messages in flight each. An echo client waits for its replies, so a ``batch(32, 0.001)``
never fills: every batch waits out its millisecond (a timer and a cancellation, and that
millisecond of latency), which is the price of a batch that waits for company. ``batch0``
measures batching without that wait. The cost reported is server CPU per message.

Each round starts every variant once, in an order rotated every round, with the server and
the load generator pinned to separate CPUs; the report gives medians over rounds and each
variant's extra server CPU per message over ``bare`` (the median of per-round differences).
Results go to ``benchmarks/results/ops-<date>.json``.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from spikard import Spikard, WebSocket, WebSocketConfig, WebSocketMessage, ops

from .peers import MAX_MESSAGE
from .servers import (
    ROOT,
    LoadgenError,
    ServerSpec,
    machine_info,
    placement_cpus,
    run_loadgen,
    running_server,
)

VARIANTS = ("bare", "rate_limit", "batch", "batch0", "map", "pipeline", "pipeline0")
RESULTS = ROOT / "benchmarks" / "results"


# ---- the servers ---------------------------------------------------------------------------


def _identity(item: Any) -> Any:
    return item


def build_app(variant: str) -> Spikard:
    """The echo app of ``variant``."""
    app = Spikard(websocket=WebSocketConfig(max_message_size=MAX_MESSAGE))
    if variant == "bare":

        @app.websocket("/")
        async def bare(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
            async for message in socket:
                yield message

    elif variant == "rate_limit":

        @app.websocket("/")
        def limited(socket: WebSocket) -> Any:
            return socket | ops.rate_limit(1e9, 1e9)

    elif variant == "map":

        @app.websocket("/")
        def mapped(socket: WebSocket) -> Any:
            return socket | ops.map(_identity)

    elif variant in ("batch", "pipeline", "batch0", "pipeline0"):
        max_delay = 0.0 if variant.endswith("0") else 0.001

        @app.websocket("/")
        async def batched(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
            stages: AsyncIterator[list[WebSocketMessage]]
            if variant.startswith("pipeline"):
                limited = socket | ops.rate_limit(1e9, 1e9)
                stages = limited | ops.batch(32, max_delay) | ops.map(_identity)
            else:
                stages = socket | ops.batch(32, max_delay)
            async for group in stages:
                for message in group:
                    yield message

    else:
        raise ValueError(f"unknown variant {variant!r}")
    return app


def serve(variant: str, port: int, backend: str) -> None:
    build_app(variant).run("127.0.0.1", port, backend=backend, log_level="warning")


# ---- measuring -----------------------------------------------------------------------------


def spec_for(variant: str, backend: str) -> ServerSpec:
    return ServerSpec(
        f"{variant}-{backend}",
        "benchmarks.ops_bench",
        ("--serve", variant, "--backend", backend),
        f"spikard stream handler with {variant}; {backend}",
        "spikard",
    )


def measure(spec: ServerSpec, workload: str, extra: Sequence[str]) -> dict[str, Any]:
    server_cpu, client_cpu = placement_cpus("split")
    try:
        with running_server(spec, cpu=server_cpu) as server:
            (result,) = run_loadgen(server, [workload], extra, cpu=client_cpu)
            return result
    except (LoadgenError, RuntimeError, OSError) as exc:
        return {"workload": workload, "error": str(exc)}


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(runs: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """Medians per (workload, server), and extra µs per message over the bare echo."""
    summary: dict[str, Any] = {}
    for workload, by_server in runs.items():
        rows: dict[str, Any] = {}
        for name, results in by_server.items():
            good = [r for r in results if "error" not in r and r.get("server_cpu_us_per_unit")]
            backend = name.rsplit("-", 1)[1]
            bare = [
                r
                for r in by_server[f"bare-{backend}"]
                if "error" not in r and r.get("server_cpu_us_per_unit")
            ]
            extra = [
                r["server_cpu_us_per_unit"] - b["server_cpu_us_per_unit"]
                for r in good
                for b in bare
                if b["round"] == r["round"]
            ]
            ratio = [
                r["server_cpu_us_per_unit"] / b["server_cpu_us_per_unit"]
                for r in good
                for b in bare
                if b["round"] == r["round"]
            ]
            rows[name] = {
                "rounds": len(good),
                "errors": [r["error"] for r in results if "error" in r],
                "server_cpu_us_per_msg": _median([r["server_cpu_us_per_unit"] for r in good]),
                "throughput_msg_per_s": _median([r["throughput"] for r in good]),
                "p50_us": _median([r["p50_us"] for r in good if r.get("p50_us") is not None]),
                "extra_us_per_msg_over_bare": _median(extra),
                "ratio_to_bare": _median(ratio),
            }
        summary[workload] = rows
    return summary


def render(summary: dict[str, Any]) -> str:
    lines = []
    for workload, rows in summary.items():
        lines.append(f"\nworkload {workload}: server CPU per message (median over rounds)\n")
        lines.append("| server | µs/msg | extra µs/msg over bare | ratio | msg/s | p50 µs |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for name, row in rows.items():

            def cell(value: float | None, digits: int = 1) -> str:
                return "n/a" if value is None else f"{value:.{digits}f}"

            lines.append(
                f"| {name} | {cell(row['server_cpu_us_per_msg'])} "
                f"| {cell(row['extra_us_per_msg_over_bare'])} "
                f"| {cell(row['ratio_to_bare'], 2)} | {cell(row['throughput_msg_per_s'], 0)} "
                f"| {cell(row['p50_us'], 0)} |"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    backends = [b for b in args.backends.split(",") if b]
    workloads = [w for w in args.workloads.split(",") if w]
    specs = [spec_for(variant, backend) for backend in backends for variant in VARIANTS]
    extra = ["--duration", str(args.duration), "--warmup", str(args.warmup)]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {s.name: [] for s in specs} for w in workloads
    }
    machine = machine_info()
    started = time.monotonic()
    for workload in workloads:
        for round_index in range(args.rounds):
            shift = round_index % len(specs)
            for spec in specs[shift:] + specs[:shift]:
                result = measure(spec, workload, extra)
                result["round"] = round_index
                runs[workload][spec.name].append(result)
                cost = result.get("server_cpu_us_per_unit")
                print(
                    f"[{workload} {round_index + 1}/{args.rounds} "
                    f"{time.monotonic() - started:4.0f}s] {spec.name}: "
                    + (f"{cost:.1f} µs/msg" if cost else str(result.get("error"))),
                    file=sys.stderr,
                    flush=True,
                )
    return {
        "machine": machine,
        "config": {
            "variants": list(VARIANTS),
            "backends": backends,
            "workloads": workloads,
            "rounds": args.rounds,
            "duration": args.duration,
            "warmup": args.warmup,
            "seconds": round(time.monotonic() - started, 1),
        },
        "runs": runs,
        "summary": summarize(runs),
    }


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--serve", choices=VARIANTS, help="run one echo server and exit")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--backends", default="asyncio", help="comma-separated")
    parser.add_argument("--workloads", default="a,b", help="comma-separated (a, b)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--output", help="JSON path (default benchmarks/results/ops-DATE.json)")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.backend)
        return 0
    # SIGTERM unwinds like Ctrl-C, so the server of the round in progress is stopped.
    signal.signal(signal.SIGTERM, _terminate)
    report = run(args)
    output = args.output or str(RESULTS / f"ops-{time.strftime('%Y-%m-%d')}.json")
    with open(output, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=1)
    print(render(report["summary"]))
    print(f"\nwritten to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
