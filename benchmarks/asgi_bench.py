"""ASGI benchmark (issue 12, speed): one Starlette app on spikard's server, uvicorn and granian.

::

    python -m benchmarks.asgi_bench                    # 5 rounds, every server, every workload
    python -m benchmarks.asgi_bench --rounds 3 --output benchmarks/results/baseline-asgi-DATE.json
    python -m benchmarks.asgi_bench --quick            # one short round of spikard and uvicorn

The same Starlette app (``benchmarks.peers.asgi_apps``) is served by spikard's CLI
(``python -m spikard module:app``, a plain ASGI app through ``ASGIApplication``), by uvicorn
with h11 and wsproto, by uvicorn with h11 and websockets-sansio (its default ``--ws auto``),
both on uvloop, and by ``granian --interface asgi`` when granian is installed (a compiled
reference; its worker process is the one measured). A spikard app with native routes runs
on spikard's own server and under uvicorn (h11 + wsproto), to report what hosting it costs.

Workloads: the suite's WebSocket echo workloads (a)-(d) of ``benchmarks.loadgen`` and a
keep-alive ``GET /`` hello-world (``benchmarks.http_loadgen``, 8 connections). Each
measurement is a fresh server process pinned as ``benchmarks.run`` pins it, with the load
generator in a process of its own; the cost is the server's CPU time per unit of work.
Within a workload every round runs every server (in an order rotated each round); ratios
are medians of the per-round ratios. Targets: spikard / each uvicorn at most 0.6 for
(a)-(c), 0.8 for (d) and for ``GET``. Results go to ``--output`` (JSON) and a Markdown
table next to it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .servers import (
    ROOT,
    LoadgenError,
    RunningServer,
    ServerSpec,
    machine_info,
    placement_cpus,
    run_loadgen,
    running_server,
)

RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_OUTPUT = RESULTS / "latest-asgi.json"
WS_WORKLOADS = ("a", "b", "c", "d")
HTTP_WORKLOAD = "get"
WORKLOAD_NAMES = (*WS_WORKLOADS, HTTP_WORKLOAD)
DESCRIPTIONS = {
    "a": "1 connection, ping-pong, 32 B text",
    "b": "64 connections x 16 in flight, 32 B text",
    "c": "1 connection, ping-pong, 64 KiB binary",
    "d": "connect + echo 32 B + close",
    "get": "keep-alive GET / hello-world, 8 connections",
}
COST = "server_cpu_us_per_unit"
PEER = "benchmarks.peers.asgi_serve"

SPIKARD = "spikard"
UVICORN = ("uvicorn-wsproto", "uvicorn-sansio")
GRANIAN = "granian"
APP_NATIVE = "spikard-app"
APP_UVICORN = "spikard-app@uvicorn"
WORKER_MEASURED = frozenset({GRANIAN})
"""Servers whose CLI process supervises one worker: the worker's CPU is measured."""

PLACEMENT = {"a": "same", "b": "split", "c": "same", "d": "split", HTTP_WORKLOAD: "split"}
"""CPU pinning per workload, as ``benchmarks.run``'s ``auto`` (not imported: it pulls in the
plotting code): ping-pong shares a core, workloads that keep the server busy get their own."""

LIMITS = {"a": 0.6, "b": 0.6, "c": 0.6, "d": 0.8, HTTP_WORKLOAD: 0.8}
"""Most spikard's server may cost (CPU per unit) relative to each uvicorn, per workload."""


def _spec(name: str, server: str, app: str, stack: str, package: str) -> ServerSpec:
    return ServerSpec(name, PEER, ("--server", server, "--app", app), stack, package)


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            SPIKARD,
            "spikard",
            "starlette",
            "python -m spikard (ASGIApplication) + Starlette; uvloop",
            "spikard",
        ),
        _spec(
            "uvicorn-wsproto",
            "uvicorn-wsproto",
            "starlette",
            "uvicorn --http h11 --ws wsproto + Starlette; uvloop",
            "uvicorn",
        ),
        _spec(
            "uvicorn-sansio",
            "uvicorn-websockets-sansio",
            "starlette",
            "uvicorn --http h11 --ws websockets-sansio (--ws auto) + Starlette; uvloop",
            "uvicorn",
        ),
        _spec(
            GRANIAN,
            "granian",
            "starlette",
            "granian --interface asgi, 1 worker + Starlette; uvloop",
            "granian",
        ),
        _spec(
            APP_NATIVE,
            "spikard",
            "spikard",
            "spikard app (native routes) on python -m spikard; uvloop",
            "spikard",
        ),
        _spec(
            APP_UVICORN,
            "uvicorn-wsproto",
            "spikard",
            "spikard app through its ASGI interface on uvicorn h11 + wsproto; uvloop",
            "uvicorn",
        ),
    )
}


def default_servers() -> list[str]:
    """Every server, without granian when it is not installed."""
    have_granian = importlib.util.find_spec("granian") is not None
    return [name for name in SERVERS if name != GRANIAN or have_granian]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- measuring ---------------------------------------------------------------------------------


def worker_pid(pid: int, timeout: float = 10.0) -> int:
    """The only child process of ``pid`` (a server's worker), waiting for it to appear."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children: list[int] = []
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as file:
                    children += [int(child) for child in file.read().split()]
        if len(children) == 1:
            return children[0]
        if len(children) > 1:
            raise RuntimeError(f"process {pid} has {len(children)} children, expected one worker")
        time.sleep(0.05)
    raise RuntimeError(f"process {pid} started no worker within {timeout:g} s")


@contextlib.contextmanager
def measured_server(spec: ServerSpec, cpu: int | None) -> Iterator[RunningServer]:
    """:func:`running_server`, with ``pid`` the process doing the work."""
    with running_server(spec, cpu=cpu) as server:
        if spec.name in WORKER_MEASURED:
            server = dataclasses.replace(server, pid=worker_pid(server.pid))
        yield server


def http_loadgen(
    server: RunningServer, args: argparse.Namespace, cpu: int | None
) -> dict[str, Any]:
    """Run ``benchmarks.http_loadgen`` against ``server``; its result as a unit result."""
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
        str(args.http_duration),
        "--warmup",
        str(args.http_warmup),
    ]
    timeout = args.http_duration + args.http_warmup + 60.0
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        if cpu is not None:
            os.sched_setaffinity(proc.pid, {cpu})
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            raise LoadgenError(f"HTTP load generator timed out after {timeout:g} s") from exc
    if proc.returncode != 0:
        tail = " | ".join(err.strip().splitlines()[-3:])
        raise LoadgenError(f"HTTP load generator exited {proc.returncode}: {tail}")
    result: dict[str, Any] = json.loads(out)
    result.update(
        workload=HTTP_WORKLOAD,
        unit="request",
        units=result["requests"],
        server_cpu_us_per_unit=result["server_cpu_us_per_request"],
        client_cpu_us_per_unit=result["client_cpu_us_per_request"],
    )
    return result


def measure(
    spec: ServerSpec, workloads: Sequence[str], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Start ``spec`` once, run ``workloads`` against it, stop it; errors are results."""
    # Quick mode runs every workload on one server process, so nothing is pinned.
    placement = "none" if args.quick else PLACEMENT[workloads[0]]
    server_cpu, client_cpu = placement_cpus(placement)
    ws = [w for w in workloads if w in WS_WORKLOADS]
    loadgen_args = ["--quick"] if args.quick else ["--duration", str(args.duration)]
    try:
        with measured_server(spec, server_cpu) as server:
            results = run_loadgen(server, ws, loadgen_args, cpu=client_cpu) if ws else []
            if HTTP_WORKLOAD in workloads:
                results.append(http_loadgen(server, args, client_cpu))
    except (LoadgenError, RuntimeError, OSError, ValueError) as exc:
        return [{"workload": w, "error": str(exc)} for w in workloads]
    return results


def _brief(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"ERROR {result['error']}"
    return (
        f"{result[COST]:.1f} us/{result['unit']}, {result['throughput']:,.0f} {result['unit']}s/s"
    )


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every server on every workload; the raw report (no summary yet)."""
    names: list[str] = args.servers
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {name: [] for name in names} for w in args.workloads
    }
    machine = machine_info()
    started = time.monotonic()
    if args.quick:
        for name in names:
            for result in measure(SERVERS[name], args.workloads, args):
                result["round"] = 0
                runs[result["workload"]][name].append(result)
                log(f"[{result['workload']}] {name}: {_brief(result)}")
    else:
        for workload in args.workloads:
            for round_index in range(args.rounds):
                shift = round_index % len(names)
                for name in names[shift:] + names[:shift]:
                    (result,) = measure(SERVERS[name], [workload], args)
                    result["round"] = round_index
                    runs[workload][name].append(result)
                    elapsed = time.monotonic() - started
                    log(
                        f"[{workload} {round_index + 1}/{args.rounds} {elapsed:4.0f}s] "
                        f"{name}: {_brief(result)}"
                    )
    config = {
        "servers": {name: SERVERS[name].stack for name in names},
        "labels": {name: SERVERS[name].label() for name in names},
        "workloads": list(args.workloads),
        "rounds": 1 if args.quick else args.rounds,
        "quick": args.quick,
        "duration": args.duration,
        "http_duration": args.http_duration,
        "http_warmup": args.http_warmup,
        "connections": args.connections,
        "seconds": round(time.monotonic() - started, 1),
    }
    return {"machine": machine, "config": config, "runs": runs}


# ---- summarizing -------------------------------------------------------------------------------


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None


def ratio(rounds_num: list[dict[str, Any]], rounds_den: list[dict[str, Any]]) -> float | None:
    """Median over rounds of cost(num) / cost(den), each within one round."""
    dens = {r["round"]: r.get(COST) for r in rounds_den if "error" not in r}
    per_round = [
        r[COST] / dens[r["round"]]
        for r in rounds_num
        if "error" not in r and r.get(COST) and dens.get(r["round"])
    ]
    return _median(per_round)


COMPARISONS: list[tuple[str, str, str]] = [
    (SPIKARD, "uvicorn-wsproto", "target"),
    (SPIKARD, "uvicorn-sansio", "target"),
    (SPIKARD, GRANIAN, "reference"),
    (APP_UVICORN, APP_NATIVE, "overhead"),
    (SPIKARD, APP_NATIVE, "overhead"),
]
"""(numerator, denominator, kind): the ratios reported; only ``target`` ones have limits."""


def summarize(report: dict[str, Any]) -> None:
    """Add medians per server and workload, the ratios, and the targets to ``report``."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = report["runs"]
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for workload, by_server in runs.items():
        summary[workload] = {}
        for name, rounds in by_server.items():
            good = [r for r in rounds if "error" not in r]
            summary[workload][name] = {
                COST: _median([r.get(COST) for r in good]),
                "throughput": _median([r.get("throughput") for r in good]),
                "unit": good[0].get("unit") if good else None,
                "rounds": len(good),
                "errors": [r["error"] for r in rounds if "error" in r],
            }
    report["summary"] = summary
    ratios: list[dict[str, Any]] = []
    for num, den, kind in COMPARISONS:
        for workload, by_server in runs.items():
            if num not in by_server or den not in by_server:
                continue
            value = ratio(by_server[num], by_server[den])
            row: dict[str, Any] = {
                "workload": workload,
                "num": num,
                "den": den,
                "kind": kind,
                "ratio": value,
            }
            if kind == "target":
                row["limit"] = LIMITS[workload]
                row["met"] = None if value is None else value <= LIMITS[workload]
            ratios.append(row)
    report["ratios"] = ratios


# ---- rendering ---------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "--:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render(report: dict[str, Any]) -> str:
    """The report as Markdown: costs, the target ratios per uvicorn, references, overheads."""
    config, summary = report["config"], report["summary"]
    workloads: list[str] = config["workloads"]
    names = list(config["servers"])
    machine = report["machine"]
    out = [
        f"ASGI benchmark of {machine.get('date', '?')} ({machine.get('cpu_model', '?')}, "
        f"{machine.get('nproc', '?')} CPUs), spikard {machine.get('spikard_commit', '?')}: "
        f"{config['rounds']} round(s), medians; server CPU microseconds per unit "
        "(message, connection or request).",
        "",
    ]
    rows = []
    for w in workloads:
        rows.append(
            [f"({w}) {DESCRIPTIONS[w]}"]
            + [
                f"{_fmt(summary[w][n][COST])} ({_fmt(summary[w][n]['throughput'], 0)}/s)"
                if summary[w][n]["rounds"]
                else "error"
                for n in names
            ]
        )
    out += _table(["workload", *names], rows)
    out += ["", "Servers:", ""]
    out += [f"- {config['labels'].get(name, name)}: {config['servers'][name]}" for name in names]

    for kind, title in (
        ("target", "spikard / {den} (server CPU per unit, median of per-round ratios)"),
        ("reference", "spikard / {den} (compiled reference, no target)"),
        ("overhead", "{num} / {den} (overhead, no target)"),
    ):
        pairs = sorted(
            {(r["num"], r["den"]) for r in report["ratios"] if r["kind"] == kind},
            key=lambda pair: [c[:2] for c in COMPARISONS].index(pair),
        )
        for num, den in pairs:
            rows = []
            for r in report["ratios"]:
                if (r["num"], r["den"]) != (num, den):
                    continue
                row = [f"({r['workload']})", _fmt(r["ratio"], 2)]
                if kind == "target":
                    met = {True: "met", False: "**missed**", None: "-"}[r["met"]]
                    row += [f"<= {r['limit']}", met]
                rows.append(row)
            header = ["workload", "ratio"]
            if kind == "target":
                header += ["target", "status"]
            out += ["", title.format(num=num, den=den) + ":", "", *_table(header, rows)]
    errors = [
        f"- ({w}) {n}: {e}" for w, by in summary.items() for n, m in by.items() for e in m["errors"]
    ]
    if errors:
        out += ["", "Errors:", "", *errors]
    return "\n".join(out) + "\n"


# ---- command line ------------------------------------------------------------------------------


def _names(valid: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; choose from {list(valid)}")
        return names

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--servers", type=_names(list(SERVERS)), help="comma-separated")
    parser.add_argument("--workloads", type=_names(WORKLOAD_NAMES), default=list(WORKLOAD_NAMES))
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload (5)")
    parser.add_argument("--duration", type=float, default=1.5, help="WebSocket window, s (1.5)")
    parser.add_argument("--http-duration", type=float, default=2.0, help="GET window, s (2)")
    parser.add_argument("--http-warmup", type=float, default=0.5, help="GET warmup, s (0.5)")
    parser.add_argument("--connections", type=int, default=8, help="GET connections (8)")
    parser.add_argument(
        "--quick", action="store_true", help="one short round; spikard and uvicorn-wsproto"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file")
    parser.add_argument(
        "--from-json", type=Path, help="print the tables of a saved run, measure nothing"
    )
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text(encoding="utf-8"))
        summarize(saved)
        print(render(saved))
        return 0
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.servers is None:
        args.servers = [SPIKARD, "uvicorn-wsproto"] if args.quick else default_servers()
    if args.quick:
        args.http_duration, args.http_warmup = 0.3, 0.1
    try:
        report = run_bench(args)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    summarize(report)
    text = render(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    args.output.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
    log(f"wrote {args.output} and {args.output.with_suffix('.md')}")
    failed = any(m["errors"] for by in report["summary"].values() for m in by.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
