"""Run the benchmark suite: every server, every workload, interleaved rounds, medians, ratios.

::

    python -m benchmarks.run                      # full run (about 12 minutes)
    python -m benchmarks.run --quick              # about a second per workload, spikard only
    python -m benchmarks.run --servers spikard-stream,websockets --workloads a,c --rounds 5

For each workload, each round starts every server once (a fresh process per measurement, in
an order rotated every round), runs the load generator against it in a separate process,
and stops it. Medians over rounds are reported, and ratios against ``spikard-stream`` are the
median of the per-round ratios, so drifting machine noise cancels. Results go to
``benchmarks/results/latest.json`` and a Markdown report to ``latest.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .servers import (
    BASELINE,
    ROOT,
    SERVERS,
    LoadgenError,
    ServerSpec,
    machine_info,
    placement_cpus,
    run_loadgen,
    running_server,
)

RESULTS = ROOT / "benchmarks" / "results"
WORKLOAD_NAMES = ("a", "b", "c", "d", "e", "f")

# The cost each workload is judged by: server CPU per unit, or KiB per idle connection.
COST = dict.fromkeys(WORKLOAD_NAMES, "server_cpu_us_per_unit")
COST["e"] = "kib_per_conn"

# (workload, peer, most spikard-stream may cost relative to the peer)
TARGETS: list[tuple[str, str, float]] = [
    ("a", "websockets", 1.0),
    ("b", "websockets", 1.0),
    ("c", "websockets", 1.25),
    ("d", "websockets", 1.0),
    ("a", "uvicorn", 2 / 3),
    ("b", "uvicorn", 2 / 3),
    ("c", "uvicorn", 2 / 3),
    ("d", "uvicorn", 2 / 3),
]
RSS_TARGET_KIB = 15.0
SHIM_TOLERANCE = 1.10

PLACEMENT_NAMES = ("auto", "split", "same", "none")
# auto: ping-pong workloads (one side runs at a time) share a core, so no message pays a
# cross-core wakeup; workloads that keep the server busy give it a core of its own.
AUTO_PLACEMENT = {"a": "same", "b": "split", "c": "same", "d": "split", "e": "split", "f": "split"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- measuring ---------------------------------------------------------------------------------


def cpus(placement: str, workload: str) -> tuple[int | None, int | None]:
    """(server CPU, load generator CPU) for ``workload`` under ``placement``."""
    return placement_cpus(
        AUTO_PLACEMENT.get(workload, "split") if placement == "auto" else placement
    )


def measure(
    spec: ServerSpec, workloads: Sequence[str], loadgen_args: Sequence[str], placement: str
) -> list[dict[str, Any]]:
    """Start ``spec``, run the load generator for ``workloads``, stop it; errors are results."""
    server_cpu, client_cpu = cpus(placement, workloads[0])
    try:
        with running_server(spec, cpu=server_cpu) as server:
            return run_loadgen(server, workloads, loadgen_args, cpu=client_cpu)
    except (LoadgenError, RuntimeError, OSError) as exc:
        return [{"workload": w, "error": str(exc)} for w in workloads]


def _brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"ERROR {result['error']}"
    parts = []
    if result.get("server_cpu_us_per_unit") is not None:
        parts.append(f"{result['server_cpu_us_per_unit']:.1f} us/{result['unit']}")
    parts.append(f"{result['throughput']:,.0f} {result['unit']}s/s")
    if "kib_per_conn" in result:
        parts.append(f"{result['kib_per_conn']:.1f} KiB/conn")
    if "p99_us" in result:
        parts.append(f"p99 {result['p99_us']:,.0f} us")
    parts.append(f"client cpu {result['client_cpu_util']:.0%}")
    return ", ".join(parts)


def run_suite(args: argparse.Namespace) -> dict[str, Any]:
    servers = [SERVERS[name] for name in args.servers]
    loadgen_args: list[str] = ["--quick"] if args.quick else []
    if args.duration is not None and not args.quick:
        loadgen_args += ["--duration", str(args.duration)]
    if args.warmup is not None:
        loadgen_args += ["--warmup", str(args.warmup)]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {s.name: [] for s in servers} for w in args.workloads
    }
    machine = machine_info()  # before the run: its date and the code measured
    started = time.monotonic()
    if args.quick:
        # One server process per server runs every workload: seconds, for CI.
        for spec in servers:
            for result in measure(spec, args.workloads, loadgen_args, args.placement):
                result["round"] = 0
                runs[result["workload"]][spec.name].append(result)
                log(f"[{result['workload']}] {spec.name}: {_brief(result)}")
    else:
        for workload in args.workloads:
            rounds = args.rss_rounds if workload == "e" else args.rounds
            for round_index in range(rounds):
                shift = round_index % len(servers)
                for spec in servers[shift:] + servers[:shift]:
                    (result,) = measure(spec, [workload], loadgen_args, args.placement)
                    result["round"] = round_index
                    runs[workload][spec.name].append(result)
                    elapsed = time.monotonic() - started
                    log(
                        f"[{workload} {round_index + 1}/{rounds} {elapsed:4.0f}s] "
                        f"{spec.name}: {_brief(result)}"
                    )
    return {
        "machine": machine,
        "config": {
            "servers": {s.name: s.stack for s in servers},
            "workloads": list(args.workloads),
            "rounds": args.rounds,
            "rss_rounds": args.rss_rounds,
            "quick": args.quick,
            "placement": args.placement,
            "loadgen_args": loadgen_args,
            "seconds": round(time.monotonic() - started, 1),
        },
        "runs": runs,
    }


# ---- summarizing -------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def _good(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rounds if "error" not in r]


def summarize(report: dict[str, Any]) -> None:
    """Add medians, per-round ratios against the baseline, and the targets to ``report``."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = report["runs"]
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for workload, by_server in runs.items():
        summary[workload] = {}
        for server, rounds in by_server.items():
            good = _good(rounds)
            keys = sorted({k for r in good for k, v in r.items() if isinstance(v, (int, float))})
            medians: dict[str, Any] = {
                k: _median([r.get(k) for r in good]) for k in keys if k != "round"
            }
            medians["rounds"] = len(good)
            medians["errors"] = [r["error"] for r in rounds if "error" in r]
            summary[workload][server] = medians
    report["summary"] = summary

    ratios: dict[str, dict[str, float | None]] = {}
    for workload, by_server in runs.items():
        base = {r["round"]: r for r in _good(by_server.get(BASELINE, []))}
        ratios[workload] = {}
        for server, rounds in by_server.items():
            if server == BASELINE:
                continue
            per_round = []
            for r in _good(rounds):
                b = base.get(r["round"])
                cost, base_cost = r.get(COST[workload]), b and b.get(COST[workload])
                if cost and base_cost:
                    per_round.append(base_cost / cost)
            ratios[workload][server] = _median(per_round)
    report["ratios"] = ratios
    report["targets"] = targets(report)


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    ratios = report["ratios"]
    summary = report["summary"]
    checks: list[dict[str, Any]] = []
    for workload, peer, limit in TARGETS:
        ratio = ratios.get(workload, {}).get(peer)
        checks.append(
            {
                "target": f"({workload}) spikard-stream CPU <= {limit:.3g} x {peer}",
                "measured": ratio,
                "limit": limit,
                "met": None if ratio is None else ratio <= limit,
            }
        )
    rss = summary.get("e", {}).get(BASELINE, {})
    counts = sorted(int(k.rsplit("_", 1)[1]) for k in rss if k.startswith("kib_per_conn_"))
    for count in counts:
        value = rss.get(f"kib_per_conn_{count}")
        checks.append(
            {
                "target": f"(e) spikard-stream RSS per idle conn at {count:,} <= "
                f"{RSS_TARGET_KIB:g} KiB",
                "measured": value,
                "limit": RSS_TARGET_KIB,
                "met": None if value is None else value <= RSS_TARGET_KIB,
            }
        )
    for workload in ("a", "b", "c", "d"):
        stream_over_shim = ratios.get(workload, {}).get("spikard-callback")
        shim = None if not stream_over_shim else 1 / stream_over_shim
        checks.append(
            {
                "target": f"({workload}) callback shim CPU / stream within "
                f"{1 / SHIM_TOLERANCE:.2f}..{SHIM_TOLERANCE:g}",
                "measured": shim,
                "limit": SHIM_TOLERANCE,
                "met": None if shim is None else 1 / SHIM_TOLERANCE <= shim <= SHIM_TOLERANCE,
            }
        )
    return checks


# ---- Markdown ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    aligns = align or "l" + "r" * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if a == "l" else "--:" for a in aligns) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render(report: dict[str, Any]) -> str:
    summary: dict[str, dict[str, dict[str, Any]]] = report["summary"]
    machine = report["machine"]
    config = report["config"]
    servers = list(config["servers"])
    workloads = [w for w in WORKLOAD_NAMES if w in summary]

    def get(workload: str, server: str, key: str) -> float | None:
        value = summary.get(workload, {}).get(server, {}).get(key)
        return value if isinstance(value, (int, float)) else None

    rss_counts = sorted(
        {
            int(k.rsplit("_", 1)[1])
            for s in summary.get("e", {}).values()
            for k in s
            if k.startswith("kib_per_conn_")
        }
    )
    out = [
        f"Run of {machine['date']}: {machine['nproc']} x {machine['cpu_model']}, "
        f"Linux {machine['kernel']}, Python {machine['python']}; spikard at "
        f"{machine.get('spikard_commit') or '?'}"
        f"{' + uncommitted src changes' if machine.get('spikard_src_modified') else ''}; "
        f"rounds {config['rounds']} (RSS {config['rss_rounds']}), "
        f"load generator {' '.join(config['loadgen_args']) or 'defaults'}, "
        f"placement {config['placement']}"
        f"{', quick' if config['quick'] else ''}; {config['seconds']:.0f} s.",
        "",
        "Server CPU time per unit of work (median over rounds; lower is better):",
        "",
    ]
    header = ["server"]
    columns: list[tuple[str, str, int]] = []
    labels = {
        "a": "(a) 1 conn ping-pong 32 B: us/msg",
        "b": "(b) 64x16 in flight 32 B: us/msg",
        "c": "(c) 64 KiB ping-pong: us/msg",
        "d": "(d) connect+echo+close: us/conn",
        "f": "(f) 1,000 busy + probe: us/msg",
    }
    for w in ("a", "b", "c", "d"):
        if w in workloads:
            header.append(labels[w])
            columns.append((w, "server_cpu_us_per_unit", 1))
    for count in rss_counts:
        header.append(f"(e) RSS/idle conn @{count:,}: KiB")
        columns.append(("e", f"kib_per_conn_{count}", 1))
    if "f" in workloads:
        header.append(labels["f"])
        columns.append(("f", "server_cpu_us_per_unit", 1))
    rows = [
        [SERVERS[s].label() if s in SERVERS else s]
        + [_fmt(get(w, s, key), d) for w, key, d in columns]
        for s in servers
    ]
    out += _table(header, rows)

    out += ["", "Throughput and latency (median over rounds):", ""]
    header = ["server"]
    columns = []
    spec = [
        ("a", "throughput", "(a) msgs/s"),
        ("a", "p50_us", "(a) p50 us"),
        ("a", "p99_us", "(a) p99 us"),
        ("b", "throughput", "(b) msgs/s"),
        ("c", "mb_per_s", "(c) MB/s"),
        ("d", "throughput", "(d) conns/s"),
        ("e", "throughput", "(e) conns/s opened"),
        ("f", "throughput", "(f) msgs/s, all"),
        ("f", "p50_us", "(f) probe p50 us"),
        ("f", "p99_us", "(f) probe p99 us"),
    ]
    for w, key, title in spec:
        if w in workloads:
            header.append(title)
            columns.append((w, key, 0 if key != "mb_per_s" else 1))
    rows = [[s] + [_fmt(get(w, s, key), d) for w, key, d in columns] for s in servers]
    out += _table(header, rows)

    ratios = report["ratios"]
    peers = [s for s in servers if s != BASELINE]
    if BASELINE in servers and peers:
        out += [
            "",
            f"Ratios {BASELINE} / peer, median of per-round ratios (server CPU per unit; "
            "RSS per connection for e). Above 1: spikard costs more than the peer.",
            "",
        ]
        header = ["peer"] + [f"({w})" for w in workloads]
        rows = [[p] + [_fmt(ratios[w].get(p), 2) for w in workloads] for p in peers]
        out += _table(header, rows)

    if report.get("targets") and BASELINE in servers:
        out += ["", "Targets (issue 4):", ""]
        rows = []
        for check in report["targets"]:
            met = {True: "met", False: "**missed**", None: "not measured"}[check["met"]]
            rows.append([check["target"], _fmt(check["measured"], 2), met])
        out += _table(["target", "measured", "status"], rows, "lrl")

    out += [
        "",
        "Load generator CPU (median over rounds): its CPU per unit and as a share of the "
        f"server's, for {BASELINE} and for the server where the share was highest:",
        "",
    ]
    rows = []
    for w in workloads:
        shares = {s: get(w, s, "client_to_server_cpu") for s in servers}
        known = {s: v for s, v in shares.items() if v is not None}
        worst = max(known, key=lambda s: known[s]) if known else None
        rows.append(
            [
                f"({w})",
                _fmt(get(w, BASELINE, "client_cpu_us_per_unit")),
                _fmt(shares.get(BASELINE), 2),
                f"{_fmt(known[worst], 2)} ({worst})" if worst else "-",
                _fmt(get(w, worst, "client_cpu_util"), 2) if worst else "-",
            ]
        )
    out += _table(
        [
            "workload",
            f"client us/unit, {BASELINE}",
            f"client/server CPU, {BASELINE}",
            "highest client/server CPU",
            "its client CPU, cores",
        ],
        rows,
    )

    errors = [
        f"- ({w}) {s}: {e}"
        for w, by_server in summary.items()
        for s, m in by_server.items()
        for e in m.get("errors", [])
    ]
    if errors:
        out += ["", "Errors:", "", *errors]
    return "\n".join(out) + "\n"


# ---- command line ------------------------------------------------------------------------------


def _names(valid: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {list(valid)}")
        return names

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run spikard's WebSocket benchmark suite against its peers."
    )
    parser.add_argument("--servers", type=_names(list(SERVERS)), help="comma-separated")
    parser.add_argument("--workloads", type=_names(WORKLOAD_NAMES), default=list(WORKLOAD_NAMES))
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (5)")
    parser.add_argument("--rss-rounds", type=int, default=1, help="rounds of workload e (1)")
    parser.add_argument("--quick", action="store_true", help="~1 s per workload, spikard only")
    parser.add_argument(
        "--duration", type=float, default=1.5, help="timed window per measurement, s (1.5)"
    )
    parser.add_argument("--warmup", type=float, help="untimed traffic before it, s")
    parser.add_argument(
        "--placement",
        choices=PLACEMENT_NAMES,
        default="auto",
        help="CPU pinning: split (server on CPU 1, load generator on 0), same (both on 1), "
        "none, or auto (same for ping-pong workloads, split for the others)",
    )
    parser.add_argument("--output", type=Path, help="JSON file (results/latest.json)")
    parser.add_argument("--baseline", action="store_true", help="also keep a dated copy")
    parser.add_argument("--plots", action="store_true", help="then run benchmarks.plots")
    parser.add_argument(
        "--from-json", type=Path, help="print the tables of a saved run, measure nothing"
    )
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        summarize(saved)
        print(render(saved))
        return 0
    if args.servers is None:
        args.servers = [BASELINE] if args.quick else list(SERVERS)
    if args.quick:
        args.rounds = args.rss_rounds = 1
        if args.placement == "auto":
            args.placement = "none"  # one server process runs every workload
    if args.rounds < 1 or args.rss_rounds < 1:
        parser.error("--rounds and --rss-rounds must be at least 1")

    from .loadgen import raise_nofile_limit

    raise_nofile_limit()  # inherited by the servers: workload e opens 10,000 connections
    report = run_suite(args)
    summarize(report)
    text = render(report)
    output = args.output or RESULTS / "latest.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    output.with_suffix(".md").write_text(text, encoding="utf-8")
    if args.baseline:
        dated = RESULTS / f"baseline-{time.strftime('%Y-%m-%d')}.json"
        dated.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(text)
    log(f"wrote {output} and {output.with_suffix('.md')}")
    if args.plots:
        from .plots import main as plots_main

        plots_main([])
    failed = any(m["errors"] for by in report["summary"].values() for m in by.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
