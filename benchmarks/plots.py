"""Scaling curves: throughput, p99 latency and server CPU versus connections and message size.

::

    python -m benchmarks.plots                    # measure and plot (about 6 minutes)
    python -m benchmarks.plots --from-json benchmarks/results/scaling-latest.json  # replot

Two sweeps per server, each on one fresh server process, one load generator run per point:

- connections: 1, 10, 100, 1,000, 10,000 connections, each ping-ponging 32 B text messages
  (server and load generator pinned to different CPUs);
- message size: one connection ping-ponging binary messages of 32 B to 1 MiB (both pinned to
  the same CPU, as for workloads a and c).

Writes ``docs/img/bench-connections.png`` and ``docs/img/bench-message-size.png`` (matplotlib,
Agg backend) and the numbers to ``benchmarks/results/scaling-latest.json``. One round only:
the curves show shape and order of magnitude; the ratios come from ``benchmarks.run``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .servers import (
    ROOT,
    SERVERS,
    LoadgenError,
    machine_info,
    placement_cpus,
    run_loadgen,
    running_server,
)

CONNECTIONS = (1, 10, 100, 1000, 10000)
SIZES = (32, 256, 1024, 4096, 16384, 65536, 262144, 1048576)
QUICK_CONNECTIONS = (1, 10, 100)
QUICK_SIZES = (32, 4096, 65536)
IMG = ROOT / "docs" / "img"
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "scaling-latest.json"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _point_args(connections: int, size: int, kind: str, quick: bool) -> list[str]:
    many = connections >= 1000
    duration = 0.5 if quick else (2.0 if many else 1.0)
    warmup = 0.2 if quick else (1.0 if many else 0.3)
    return [
        "--connections",
        str(connections),
        "--size",
        str(size),
        "--kind",
        kind,
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--timeout",
        "180",
    ]


def sweep(
    server_name: str, points: Sequence[tuple[int, int, str]], quick: bool, placement: str
) -> list[dict[str, Any]]:
    """Measure ``points`` (connections, size, kind) on one process of ``server_name``."""
    results: list[dict[str, Any]] = []
    server_cpu, client_cpu = placement_cpus(placement)
    try:
        with running_server(SERVERS[server_name], cpu=server_cpu) as server:
            for connections, size, kind in points:
                try:
                    (result,) = run_loadgen(
                        server,
                        ["scale"],
                        _point_args(connections, size, kind, quick),
                        cpu=client_cpu,
                        timeout=600.0,
                    )
                except LoadgenError as exc:
                    result = {"connections": connections, "size": size, "error": str(exc)}
                log(
                    f"{server_name}: {connections} conns x {size} B: "
                    + (
                        f"ERROR {result['error']}"
                        if "error" in result
                        else f"{result['throughput']:,.0f} msgs/s, "
                        f"p99 {result['p99_us']:,.0f} us, "
                        f"{result.get('server_cpu_us_per_unit') or 0:.1f} us/msg"
                    )
                )
                results.append(result)
    except (RuntimeError, OSError) as exc:
        results.append({"error": str(exc)})
    return results


def measure(servers: Sequence[str], quick: bool) -> dict[str, Any]:
    connections = QUICK_CONNECTIONS if quick else CONNECTIONS
    sizes = QUICK_SIZES if quick else SIZES
    report: dict[str, Any] = {
        "machine": machine_info(),
        "servers": {name: SERVERS[name].stack for name in servers},
        "connections": {},
        "sizes": {},
    }
    started = time.monotonic()
    for name in servers:
        report["connections"][name] = sweep(
            name, [(n, 32, "text") for n in connections], quick, "split"
        )
        report["sizes"][name] = sweep(name, [(1, s, "binary") for s in sizes], quick, "same")
        log(f"-- {name} done at {time.monotonic() - started:.0f} s")
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def _human_bytes(value: float) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:g} {unit}"
    return f"{value:g} B"


def plot(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Draw both figures from ``report``; return the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullLocator

    machine = report["machine"]
    subtitle = (
        f"{machine['nproc']} x {machine['cpu_model']}, Python {machine['python']}, "
        f"{machine['date'][:10]}, spikard at {machine.get('spikard_commit') or '?'}"
        f"{'+' if machine.get('spikard_src_modified') else ''}; "
        "server and load generator on one machine (loopback)"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    figures: list[tuple[str, str, str, str, str]] = [
        ("connections", "connections", "bench-connections.png", "msgs/s", "throughput"),
        ("sizes", "size", "bench-message-size.png", "MB/s", "mb_per_s"),
    ]
    for key, x_key, filename, y_label, y_key in figures:
        fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
        for index, name in enumerate(report[key]):
            points = [p for p in report[key][name] if "error" not in p and x_key in p]
            if not points:
                continue
            xs = [p[x_key] for p in points]
            style = {
                "marker": "o",
                "markersize": 4,
                "linewidth": 2.4 if name.startswith("spikard") else 1.4,
                "linestyle": "--" if name == "spikard-trio" else "-",
                "color": plt.get_cmap("tab10")(index % 10),
                "label": name,
            }
            axes[0].plot(xs, [p[y_key] for p in points], **style)
            axes[1].plot(xs, [p["p99_us"] / 1000 for p in points], **style)
            axes[2].plot(xs, [p.get("server_cpu_us_per_unit") for p in points], **style)
        what = (
            "connections (each ping-pong, 32 B text)"
            if key == "connections"
            else ("message size (1 connection ping-pong, binary)")
        )
        titles = (f"throughput, {y_label}", "p99 round-trip latency, ms", "server CPU, us/msg")
        ticks = sorted({p[x_key] for pts in report[key].values() for p in pts if x_key in p})
        for axis, title in zip(axes, titles, strict=True):
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_title(title)
            axis.set_xlabel(what)
            axis.grid(True, which="both", alpha=0.3)
            axis.set_xticks(ticks)
            axis.xaxis.set_minor_locator(NullLocator())
            axis.xaxis.set_major_formatter(
                FuncFormatter(lambda v, _: _human_bytes(v))
                if key == "sizes"
                else FuncFormatter(lambda v, _: f"{v:,.0f}")
            )
            if key == "sizes":
                axis.tick_params(axis="x", labelrotation=40)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"spikard and peers: scaling with {what.split(' (')[0]}\n{subtitle}")
        fig.tight_layout()
        path = out_dir / filename
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure and plot the scaling curves.")
    parser.add_argument("--servers", help="comma-separated (default: all)")
    parser.add_argument("--quick", action="store_true", help="three points per sweep")
    parser.add_argument("--from-json", type=Path, help="replot saved results, measure nothing")
    parser.add_argument("--output", type=Path, default=DEFAULT_JSON, help="results JSON")
    parser.add_argument("--img-dir", type=Path, default=IMG, help="where the PNGs go")
    args = parser.parse_args(argv)
    if args.from_json:
        report = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        servers = args.servers.split(",") if args.servers else list(SERVERS)
        unknown = [s for s in servers if s not in SERVERS]
        if unknown:
            parser.error(f"unknown servers {unknown}; choose from {list(SERVERS)}")
        from .loadgen import raise_nofile_limit

        raise_nofile_limit()
        report = measure(servers, args.quick)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        log(f"wrote {args.output}")
    for path in plot(report, args.img_dir):
        log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
